"""``echat`` suite: EChat-eval-shaped items answered speech-to-speech.

Manifest (JSONL, docs/eval.md): ``{"key", "wav", "category": emotion|age|gender|event|multi,
"labels": {"emotion"|"age"|"gender"|"event": label}, "query"?: user transcript,
"reference"?: a reference reply, "lang"?: zh|en}``.
Scores per item: (a) the judge's 1-5 rubric score (absent with the rule judge); (b) whether the
think string names each reference label (think on); (c) text-speech consistency: the error
rate between the reply text and the transcript of the reply audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from osum_echat.eval.asr import asr_errors, pool_rates
from osum_echat.eval.labels import GROUPS, canonical, think_names_reference
from osum_echat.eval.store import read_jsonl
from osum_echat.eval.wer import normalize_for_scoring

NAME = "echat"
CATEGORIES = ("emotion", "age", "gender", "event", "multi")
RUBRIC = Path(__file__).resolve().parents[2] / "conf" / "eval" / "echat_rubric_v1.yaml"


def read_manifest(path: str | Path) -> list[dict]:
    """Validated manifest items; a bad record raises naming the file, line and field."""
    items, seen = [], set()
    for n, rec in enumerate(read_jsonl(path), 1):
        where = f"{path}:{n}"
        for f in ("key", "wav", "category"):
            if not rec.get(f):
                raise ValueError(f"{where}: missing field {f!r}")
        if rec["category"] not in CATEGORIES:
            raise ValueError(f"{where}: category {rec['category']!r} not in {CATEGORIES}")
        labels = rec.get("labels") or {}
        if not isinstance(labels, dict) or any(g not in GROUPS for g in labels):
            raise ValueError(f"{where}: labels must map some of {GROUPS} to a label, got {labels!r}")
        for g, v in labels.items():
            if canonical(g, v) is None:
                raise ValueError(f"{where}: unknown {g} label {v!r} (docs/eval.md lists the spellings)")
        if rec["key"] in seen:
            raise ValueError(f"{where}: duplicate key {rec['key']!r}")
        seen.add(rec["key"])
        items.append({"key": rec["key"], "suite": NAME, "wav": rec["wav"], "category": rec["category"],
                      "labels": {g: canonical(g, v) for g, v in labels.items()},
                      "query": rec.get("query"), "reference": rec.get("reference"), "lang": rec.get("lang")})
    return items


def decode_record(item: dict, think: bool) -> dict:
    """The raw-list record the batch decoder answers (S2S, with or without think)."""
    task = "<S2TCHAT> <TEXT2TOKEN> <THINK>" if think else "<S2TCHAT> <TEXT2TOKEN>"
    return {"key": item["key"], "wav": item["wav"], "task": task, "txt": item.get("reference") or ""}


def load_rubric(path: str | Path = RUBRIC) -> dict:
    rub = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    missing = [c for c in CATEGORIES if c not in rub.get("focus", {})]
    if missing or "template" not in rub or "version" not in rub:
        raise ValueError(f"{path}: rubric needs version, template and focus for {CATEGORIES} (missing {missing})")
    return rub


def judge_prompt(item: dict, rubric: dict) -> str:
    labels = ", ".join(f"{g}: {v}" for g, v in item["labels"].items()) or "unknown"
    return rubric["template"].format(query=item.get("query") or item.get("user_transcript") or "(not available)",
                                     labels=labels, category=item["category"],
                                     focus=rubric["focus"][item["category"]], reply=item.get("reply", ""),
                                     reference=item.get("reference") or "(none)")


def score(item: dict, think_on: bool) -> dict:
    out: dict = {}
    if think_on:
        out["think_names"] = think_names_reference(item.get("think") or "", item["labels"])
    tr = item.get("transcript")
    if tr is not None and normalize_for_scoring(item.get("reply") or ""):  # a reply of tags only has no words
        # an ASR that writes in another form (reply_form, generation.load_asr) is scored in its form
        ref = item["reply_form"] if item.get("reply_form") is not None else item["reply"]
        out["consistency"] = asr_errors(ref, tr)
    return out


def aggregate(items: list[dict]) -> dict:
    res: dict = {"n": len(items), "by_category": {}}
    for cat in CATEGORIES + ("all",):
        sel = [it for it in items if cat == "all" or it["category"] == cat]
        if not sel:
            continue
        row: dict = {"n": len(sel)}
        judged = [it["judge"]["score"] for it in sel if it.get("judge", {}).get("score") is not None]
        unparsed = sum(1 for it in sel if it.get("judge", {}).get("raw") is not None
                       and it["judge"].get("score") is None)
        row["judge"] = {"mean": sum(judged) / len(judged) if judged else None, "n": len(judged),
                        "unparsed": unparsed, "score_100": 20 * sum(judged) / len(judged) if judged else None}
        checks = [(g, ok) for it in sel for g, ok in it["scores"].get("think_names", {}).items()]
        if checks:
            row["think_names"] = {"accuracy": sum(ok for _, ok in checks) / len(checks), "n": len(checks),
                                  "by_group": {g: sum(ok for h, ok in checks if h == g)
                                               / max(1, sum(1 for h, _ in checks if h == g))
                                               for g in sorted({g for g, _ in checks})}}
        cons = [it["scores"]["consistency"] for it in sel if "consistency" in it["scores"]]
        if cons:
            row["consistency"] = pool_rates(cons)["mer"]
        row["no_audio"] = sum(1 for it in sel if it.get("transcript") is None)
        row["no_text"] = sum(1 for it in sel if not normalize_for_scoring(it.get("reply") or ""))
        res["by_category"][cat] = row
    return res


def headline(res: dict) -> list[tuple[str, Optional[float], str]]:
    rows = []
    for cat, row in res["by_category"].items():
        j = row["judge"]
        rows.append((f"{cat}: judge score 1-5 (n={j['n']}, unparsed={j['unparsed']})", j["mean"], ""))
        if "think_names" in row:
            rows.append((f"{cat}: think names the reference label", 100 * row["think_names"]["accuracy"], "%"))
        if "consistency" in row:
            rows.append((f"{cat}: text-speech consistency error", 100 * row["consistency"]["rate"], "%"))
    if "all" in res["by_category"]:
        rows.append(("replies without audio (no codes or no vocoder)", res["by_category"]["all"]["no_audio"], ""))
        rows.append(("replies without words (consistency not scored)", res["by_category"]["all"]["no_text"], ""))
    return rows
