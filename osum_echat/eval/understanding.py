"""``understanding`` suite: any data list of the project (raw jsonl or shards), each record
decoded with its own task; scored by ASR error (language-aware), tag accuracy + confusion per
group (age, gender, emotion, sound event ``<CAPTION>``, speaking style ``<STYLE>``) and SRWT
timestamp error (``<ALIGN>`` tasks).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Optional

from osum_echat.eval.asr import asr_errors, pool_rates
from osum_echat.eval.tags import NONE, TAG_GROUPS, extract_tags, group_tag
from osum_echat.eval.timestamps import strip_time_marks, timestamp_error
from osum_echat.eval.wer import normalize_for_scoring

NAME = "understanding"
# task tag -> scored group; STYLE / EVENT take the tags outside the fixed groups
TASK_GROUPS = {"<AGE>": "AGE", "<GENDER>": "GENDER", "<EMOTION>": "EMOTION", "<STYLE>": "STYLE",
               "<CAPTION>": "EVENT"}
_FIXED = {t for g in TAG_GROUPS.values() for t in g}


def _free_tag(text: str) -> str:
    """First tag that is no age / gender / emotion tag (style, sound event), or NONE."""
    for t in extract_tags(text):
        if t not in _FIXED and not t.replace(".", "").isdigit():
            return t
    return NONE


def label_of(text: str, group: str) -> str:
    return _free_tag(text) if group in ("STYLE", "EVENT") else group_tag(text, group)


def read(samples) -> list[dict]:
    """Items (key, task, reference) of prepared list samples."""
    return [{"key": s.key, "suite": NAME, "task": s.task or "<TRANSCRIBE>", "reference": s.txt,
             "category": s.task or "<TRANSCRIBE>"} for s in samples]


def score(item: dict) -> dict:
    """Per-item scores from ``item['reply']`` and ``item['reference']``."""
    task, ref, hyp = item["task"], item["reference"], item.get("reply", "")
    out: dict = {}
    if "<TRANSCRIBE>" in task:
        ref_text = strip_time_marks(ref)
        if normalize_for_scoring(ref_text):
            out["asr"] = asr_errors(ref_text, strip_time_marks(hyp))
    for tag, group in TASK_GROUPS.items():
        if tag in task:
            r = label_of(ref, group)
            if r != NONE:
                out[f"tag_{group.lower()}"] = {"ref": r, "hyp": label_of(hyp, group)}
    if "<ALIGN>" in task:
        out["srwt"] = timestamp_error(ref, hyp)
    return out


def aggregate(items: list[dict]) -> dict:
    res: dict = {"n": len(items)}
    asr_rows = [it["scores"]["asr"] for it in items if "asr" in it["scores"]]
    if asr_rows:
        res["asr"] = pool_rates(asr_rows)
    for group in TASK_GROUPS.values():
        name = f"tag_{group.lower()}"
        pairs = [it["scores"][name] for it in items if name in it["scores"]]
        if pairs:
            conf: dict[str, Counter] = defaultdict(Counter)
            for p in pairs:
                conf[p["ref"]][p["hyp"]] += 1
            ok = sum(p["ref"] == p["hyp"] for p in pairs)
            res[name] = {"accuracy": ok / len(pairs), "n": len(pairs), "correct": ok,
                         "confusion": {k: dict(v) for k, v in sorted(conf.items())}}
    srwt = [it["scores"]["srwt"] for it in items if "srwt" in it["scores"]]
    if srwt:
        pairs = sum(s["pairs"] for s in srwt)
        res["srwt"] = {"aas_ms": sum(s["abs_ms_sum"] for s in srwt) / pairs if pairs else None,
                       "pairs": pairs, "unpaired": sum(s["unpaired"] for s in srwt), "n": len(srwt)}
    return res


def headline(res: dict) -> list[tuple[str, Optional[float], str]]:
    """(metric, value, unit) rows for the report's summary table."""
    rows = []
    for name, v in res.get("asr", {}).items():
        rows.append((f"ASR {name.upper()} (n={v['n']})", 100 * v["rate"], "%"))
    for k, v in res.items():
        if k.startswith("tag_"):
            rows.append((f"{k[4:]} accuracy (n={v['n']})", 100 * v["accuracy"], "%"))
    if "srwt" in res:
        rows.append((f"SRWT AAS (pairs={res['srwt']['pairs']})", res["srwt"]["aas_ms"], "ms"))
    return rows
