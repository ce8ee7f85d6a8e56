"""Paralinguistic tag scoring: ``<TAG>``s extracted from hypothesis and reference.

For a tag group (e.g. ``AGE`` = CHILD / ADULT / OLD) the first tag of that group in each text
is compared; accuracy counts a missing hypothesis tag as wrong (``<NONE>`` in the confusion).
Without a group, every reference tag must appear in the hypothesis (set recall accuracy).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable, Optional

_TAG = re.compile(r"<([^<>]+)>")
NONE = "NONE"

TAG_GROUPS: dict[str, tuple[str, ...]] = {
    "AGE": ("CHILD", "ADULT", "OLD", "YOUTH", "MIDDLE_AGE", "MIDDLE"),
    "GENDER": ("MALE", "FEMALE"),
    "EMOTION": ("NEUTRAL", "HAPPY", "SAD", "ANGRY", "ANGER", "SURPRISE", "FEAR", "DISGUST", "SURPRISED",
                "FEARFUL", "DISGUSTED", "OTHER"),
    # OSUM's vocal events (VED); its style labels (SSR) are Chinese words: use the group-less mode
    "CAPTION": ("LAUGH", "COUGH", "CRY", "SCREAMING", "SIGH", "THROAT CLEARING", "SNEEZE", "OTHER"),
}
AGE_FOLD = {"YOUTH": "ADULT", "MIDDLE_AGE": "ADULT", "MIDDLE": "ADULT"}


def extract_tags(text: str) -> list[str]:
    """``"好<HAPPY><ADULT>"`` -> ['HAPPY', 'ADULT'] (upper-cased, stripped, think markers skipped)."""
    return [t.strip().upper() for t in _TAG.findall(text) if t.strip().lower() not in ("think", "think end")]


def group_tag(text: str, group: str) -> str:
    members = TAG_GROUPS.get(group.upper())
    for t in extract_tags(text):
        if members is None or t in members:
            return AGE_FOLD.get(t, t) if group.upper() == "AGE" else t
    return NONE


def tag_scores(pairs: Iterable[tuple[str, str]], group: Optional[str] = None) -> dict:
    """{accuracy, n, confusion {ref: {hyp: count}}} over (ref, hyp) text pairs."""
    n = correct = 0
    confusion: dict[str, Counter] = defaultdict(Counter)
    for ref, hyp in pairs:
        if group:
            r, h = group_tag(ref, group), group_tag(hyp, group)
            if r == NONE:
                continue
            confusion[r][h] += 1
            correct += int(r == h)
            n += 1
        else:
            rt, ht = extract_tags(ref), set(extract_tags(hyp))
            for t in rt:
                confusion[t][t if t in ht else NONE] += 1
                correct += int(t in ht)
                n += 1
    return {"accuracy": correct / n if n else 0.0, "n": n, "correct": correct,
            "confusion": {k: dict(v) for k, v in sorted(confusion.items())}}
