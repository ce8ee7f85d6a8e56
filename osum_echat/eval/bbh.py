"""VoiceBench BBH answer extraction (sports_understanding, hyperbaton, navigate, web_of_lies).

The official ``bbh`` evaluator normalises the reply (lower case; ``: ** " - , . ：`` to spaces;
leading ``<1>``-``<3>`` dropped) and then matches long per-subtask phrase lists collected from
model outputs, falling back to a yes/no at the start or end of the reply and finally to a random
guess. This module keeps the normalisation and fallbacks and replaces the phrase lists with a
few regular expressions of the same phrases (docs/eval.md: approximated). Answers are 1 / 0
(yes / plausible / true / option b = 1 ... as the official ground-truth map: yes 1, no 0,
(a) 0, (b) 1).
"""

from __future__ import annotations

import random
import re

TRUTH = {"yes": 1, "no": 0, "(a)": 0, "(b)": 1}


def normalize(reply: str) -> str:
    r = reply.lower()
    if r.endswith("<|user|>"):
        r = r[:-8].strip()
    if r[:3] in ("<1>", "<2>", "<3>"):
        r = r[3:].strip()
    r = r.replace("<|turn_end|>", "")
    for ch in (":", "**", '"', "-", ",", ".", "："):
        r = r.replace(ch, " ")
    return " ".join(r.split())


_AB = re.compile(r"(?:answer|option|sentence|order|choice)(?: would be| is| should be)(?: the)?(?: option| sentence)?"
                 r" ?[\(\[]?([ab])[\)\]]?(?![a-z])")
_AB_FIRST = re.compile(r"(?:option|sentence) ?\(?([ab])\)? (?:is|has|follows|uses|would be)"
                       r" (?:the )?(?:correct|more|right|proper|closest|better)")
_YN = re.compile(r"(?:the answer is|answer is|answer would be|the final answer is) (yes|no)(?![a-z])")


def extract_hyperbaton(r: str) -> int | None:
    if r in ("a", "b"):
        return 0  # the official scorer maps both bare letters to 0
    m = _AB.search(r) or _AB_FIRST.search(r)
    return None if m is None else int(m.group(1) == "b")


def extract_yes_no(r: str, positive: tuple[str, ...], negative: tuple[str, ...]) -> int | None:
    m = _YN.search(r)
    if m:
        return int(m.group(1) == "yes")
    for p in negative:  # negatives first: "not plausible" contains "plausible"
        if p in r:
            return 0
    for p in positive:
        if p in r:
            return 1
    if r.startswith("no"):
        return 0
    if r.startswith("yes"):
        return 1
    if r.endswith("no"):
        return 0
    if r.endswith("yes"):
        return 1
    return None


PHRASES = {
    "sports_understanding": (("is plausible", "sentence is plausible", "is a plausible"),
                             ("not plausible", "implausible", "is not a plausible")),
    "navigate": (("return to the starting point", "back to the starting point", "end up at the starting point"),
                 ("not return to the starting point", "don't return", "do not return", "not end up")),
    "web_of_lies": (("tells the truth", "is telling the truth", "does tell the truth"),
                    ("lies", "does not tell the truth", "doesn't tell the truth", "is lying")),
}


def extract(reply: str, item_id: str) -> int | None:
    """1 / 0 answer of a BBH reply, None when nothing matched. ``item_id`` names the subtask."""
    r = normalize(reply)
    if "hyperbaton" in item_id:
        return extract_hyperbaton(r)
    for task, (pos, neg) in PHRASES.items():
        if task in item_id:
            return extract_yes_no(r, pos, neg)
    raise ValueError(f"BBH item id {item_id!r} names no known subtask "
                     "(sports_understanding, hyperbaton, navigate, web_of_lies)")


def score_bbh(reply: str, reference: str, item_id: str) -> dict:
    """{pred, parsed, correct} with a seeded random guess for an unparsed reply (official behaviour)."""
    pred = extract(reply, item_id)
    parsed = pred is not None
    if pred is None:
        pred = random.Random(f"bbh|{item_id}").choice([0, 1])
    truth = TRUTH.get(reference.strip().lower())
    if truth is None:
        raise ValueError(f"BBH reference {reference!r} of {item_id!r} is not yes / no / (a) / (b)")
    return {"pred": pred, "parsed": parsed, "correct": pred == truth}
