"""Score one decode of the mini test set per task (the key suffix names the task) and write
``results.json`` in the decode folder.

    python recipes/mini/local/score_all.py --decode_dir DIR [--think_style language]

Metrics: ASR CER and WER; gender / age / emotion tag accuracy; reply exact match of spoken
chat, think chat (reply after the think part), text chat and both S2S tasks, also on the
records whose reply depends on the speaker's emotion or age (``extra.depends``); for S2S and
TTS the number of utterances with speech codes. References are the records' labels; chat replies
are compared without the leading answer-emotion tag (language think style removes it).
Uses ``osum_echat.eval.score`` (the library behind ``python -m osum_echat.bin.score``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from osum_echat.eval.score import read_kv, score  # noqa: E402
from osum_echat.text.normalize import split_leading_tag  # noqa: E402

PLAN = [("asr", "cer", None), ("asr", "wer", None), ("gender", "tag", "GENDER"), ("age", "tag", "AGE"),
        ("emotion", "tag", "EMOTION"), ("chat", "exact", None), ("think", "exact", None),
        ("t2t", "exact", None), ("s2s", "exact", None), ("s2sthink", "exact", None)]


def by_task(kv: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for k, v in kv.items():
        out.setdefault(k.rsplit("-", 1)[-1], {})[k] = v
    return out


def depends(decode_dir: Path) -> dict[str, str]:
    """key -> what its reply depends on ('emotion' / 'age' / 'none'; extra.depends of the decoded
    list), for the subset rows."""
    out: dict[str, str] = {}
    p = decode_dir / "test.jsonl"
    if p.is_file():
        for ln in p.read_text(encoding="utf-8").splitlines():
            if ln.strip():
                r = json.loads(ln)
                out[r["key"]] = (r.get("extra") or {}).get("depends", "none")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decode_dir", required=True)
    p.add_argument("--think_style", default="language")
    a = p.parse_args()
    d = Path(a.decode_dir)
    refs, hyps = by_task(read_kv(str(d / "ref"))), by_task(read_kv(str(d / "text")))
    codes = by_task(read_kv(str(d / "codes"))) if (d / "codes").is_file() else {}
    dep = depends(d)
    results: dict[str, dict] = {}
    for task, metric, group in PLAN:
        if task not in refs:
            continue
        ref = refs[task]
        if task in ("chat", "think", "s2s", "s2sthink") and a.think_style == "language":
            ref = {k: split_leading_tag(v)[1] for k, v in ref.items()}
        s = score(ref, hyps.get(task, {}), metric, group)
        s.pop("per_utt_errors", None)
        s.pop("confusion", None) if metric != "tag" else None
        results[f"{task}_{metric}"] = s
        if metric == "exact":  # the replies that depend on the speaker's emotion or age
            sub = {k: v for k, v in ref.items() if dep.get(k, "none") != "none"}
            if sub:
                s = score(sub, {k: v for k, v in hyps.get(task, {}).items() if k in sub}, metric, group)
                results[f"{task}_exact_dependent"] = {k: s[k] for k in ("metric", "n", "accuracy")}
    for task in ("s2s", "s2sthink", "tts"):
        if task in refs:
            n = sum(1 for k in refs[task] if codes.get(task, {}).get(k, "").split())
            results[f"{task}_codes"] = {"metric": "has_codes", "n": len(refs[task]), "with_codes": n}
    (d / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    for name, s in results.items():
        val = s.get(s["metric"], s.get("accuracy", s.get("with_codes")))
        print(f"{name:18s} {val}")


if __name__ == "__main__":
    main()
