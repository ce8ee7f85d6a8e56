"""One decoding list for the whole test set (records keep their own task; the key suffix
-asr/-gender/-age/-emotion/-chat/-think/-t2t/-s2s/-s2sthink/-tts names the task).

    python recipes/mini/local/eval_list.py --data_dir DATA --out LIST [--max_per_task N]
        [--tasks asr,gender,...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TASKS = ("asr", "gender", "age", "emotion", "chat", "think", "t2t", "s2s", "s2sthink", "tts")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max_per_task", type=int, default=0, help="0 = all; applied to S2S and TTS only")
    p.add_argument("--tasks", default=",".join(TASKS))
    a = p.parse_args()
    out = []
    for t in a.tasks.split(","):
        with open(Path(a.data_dir, "test", "tasks", f"{t}.jsonl"), encoding="utf-8") as f:
            recs = [json.loads(ln) for ln in f if ln.strip()]
        if a.max_per_task and t in ("s2s", "s2sthink", "tts"):
            recs = recs[:a.max_per_task]
        for r in recs:
            if t == "t2t" or t == "tts":
                r["key"] = f"{r['key']}-{t}"
            out.append(r)
    with open(a.out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in out)
    print(f"{len(out)} records -> {a.out}")


if __name__ == "__main__":
    main()
