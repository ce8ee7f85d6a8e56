"""EChat-eval-style items for the mini test voices (docs/eval.md, manifest format).

    python recipes/mini/local/echat_items.py --data_dir DATA --out ITEMS.jsonl [--max N]

One item per S2S+think test record (a question asked by a held-out voice): categories cycle
emotion / age / gender; the reference label is the voice's attribute of that category, the
query is the question, the reference reply the corpus's templated empathetic answer.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

CATEGORIES = ("emotion", "age", "gender")
FIELD = {"emotion": "q_emotion", "age": "age", "gender": "gender"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max", type=int, default=0, help="0 = all")
    a = p.parse_args()
    src = Path(a.data_dir, "test", "tasks", "s2sthink.jsonl")
    recs = [json.loads(ln) for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()]
    recs = recs[:a.max] if a.max else recs
    items = []
    for i, r in enumerate(recs):
        cat = CATEGORIES[i % len(CATEGORIES)]
        ex = r["extra"]
        reference = re.sub(r"^<[^<>]+>", "", r["txt"]).strip()  # drop the answer-emotion tag
        items.append({"key": r["key"].rsplit("-", 1)[0] + f"-echat-{cat}", "wav": r["wav"], "category": cat,
                      "labels": {cat: ex[FIELD[cat]]}, "query": ex.get("question"), "reference": reference,
                      "lang": "zh" if re.search(r"[\u4e00-\u9fff]", reference) else "en"})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    print(f"{len(items)} EChat-style items -> {a.out}")


if __name__ == "__main__":
    main()
