"""Scoring of ``key<TAB>text`` files: CER / WER / tag accuracy / exact match / SRWT alignment
shift (``srwt``: average shift of word timestamps in ms, ``osum_echat/eval/srwt.py``).

Keys missing from the hypothesis count as empty hypotheses (all deletions / wrong);
hypothesis keys without a reference are ignored (and counted).
"""

from __future__ import annotations

import logging
from pathlib import Path

from osum_echat.eval.srwt import srwt_scores
from osum_echat.eval.tags import tag_scores
from osum_echat.eval.wer import EditCounts, error_counts, normalize_for_scoring

logger = logging.getLogger(__name__)
METRICS = ("cer", "wer", "tag", "exact", "srwt")


def read_kv(path: str | Path) -> dict[str, str]:
    """``key<TAB>text`` lines (a missing text is ''); later duplicates win."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, _, text = line.partition("\t")
            if not _ and " " in key:  # tolerate "key text" files
                key, _, text = line.partition(" ")
            out[key] = text
    return out


def score(refs: dict[str, str], hyps: dict[str, str], metric: str, tag_group: str | None = None) -> dict:
    """Summary dict of one metric (plus per-utterance error counts for cer/wer)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    keys = list(refs)
    missing = [k for k in keys if k not in hyps]
    summary: dict = {"metric": metric, "n": len(keys), "missing_hyp": len(missing),
                     "extra_hyp": len(set(hyps) - set(refs))}
    if metric in ("cer", "wer"):
        total = EditCounts()
        per_utt = {}
        for k in keys:
            c = error_counts(refs[k], hyps.get(k, ""), "char" if metric == "cer" else "word")
            total += c
            per_utt[k] = c.errors
        summary.update({metric: total.rate, "sub": total.sub, "del": total.dele, "ins": total.ins,
                        "ref_tokens": total.ref, "errors": total.errors, "per_utt_errors": per_utt})
    elif metric == "tag":
        summary.update(tag_scores(((refs[k], hyps.get(k, "")) for k in keys), tag_group))
        summary["tag_group"] = tag_group
    elif metric == "srwt":
        summary.update(srwt_scores((refs[k], hyps.get(k, "")) for k in keys))
    else:
        ok = sum(normalize_for_scoring(refs[k], keep_tags=True)
                 == normalize_for_scoring(hyps.get(k, ""), keep_tags=True) for k in keys)
        summary.update({"accuracy": ok / len(keys) if keys else 0.0, "correct": ok})
    return summary


def summary_line(s: dict) -> str:
    m = s["metric"]
    if m in ("cer", "wer"):
        return (f"{m.upper()} {100 * s[m]:.2f}% [{s['errors']} / {s['ref_tokens']}, sub {s['sub']} "
                f"del {s['del']} ins {s['ins']}] n={s['n']} missing={s['missing_hyp']}")
    if m == "srwt":
        return (f"SRWT AAS {s['aas_ms']:.1f} ms over {s['matched']} matched tokens "
                f"({100 * s['match_rate']:.1f}% of {s['ref_tokens']}), unparsed hyp {s['unparsed_hyp']} "
                f"n={s['n']} missing={s['missing_hyp']}")
    extra = f" group={s.get('tag_group')}" if m == "tag" else ""
    return f"{m} accuracy {100 * s['accuracy']:.2f}% ({s['correct']} / {s.get('n')}){extra} missing={s['missing_hyp']}"
