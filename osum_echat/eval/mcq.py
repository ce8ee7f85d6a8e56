"""VoiceBench multiple-choice answer extraction (mmsu, openbookqa).

Follows the official ``mcq`` evaluator's procedure: lower-case the reply, drop a leading
``<1>``/``<2>``/``<3>`` marker, try answer templates in order (each with choices a..d), then a
reply that is just the letter or starts with ``letter`` + ``.,:)``. The official template list
has ~180 entries collected from specific models' outputs; this module keeps a condensed set of
the same families (docs/eval.md: approximated). An unextracted reply returns None; the suite
counts it as a failure and, like the official scorer, scores a seeded random guess.
"""

from __future__ import annotations

import random

CHOICES = ("a", "b", "c", "d")
TEMPLATES: tuple[str, ...] = (
    "答案是[C]", "答案是 [C]", "答案是选项[C]", "答案应该是[C]", "答案应该是 [C]", "答案就是选项[C]", "答案选[C]",
    "[C]是正确", "选项[C]是最合适的",
    "answer is: **[C]", "answer is **[C]", "the answer to the question is: **[C]", "the answer is '[C]'",
    "[C] is the best answer", "the answer is [C]", "the correct answer is [C]", "would select [C]",
    "would choose [C]", "would select option [C]", "would choose option [C]", 'is "[C]"', 'is "[C].',
    "is: **[C])", "is **[C],", "is **[C]:", "is **[C])", "is: **[C].", "is **[C].", "is: **[C]**",
    "is **[C]**", "be **[C]**", "option **[C]:", "would be [C]", "would be option [C]", "would be ([C])",
    "is [C],", "is [C].", "is [C]:", "is [C])", "is ([C])", "is: [C].", "is: [C])", "i'd say [C].",
    "option [C].", "option [C]:", "option [C],", "(option [C])", "answer is ([C])", "is: [C]",
    " [C].", " [C],", " [C]:", " [C])", "**[C].", "**[C])", '"[C].', '"[C],', '"[C]:', "([C])", '"[C]"',
)


def extract_choice(reply: str) -> str | None:
    """'A'..'D' named by the reply, or None."""
    r = reply.lower()
    if r[:3] in ("<1>", "<2>", "<3>"):
        r = r[3:].strip()
    for t in TEMPLATES:
        for c in CHOICES:
            if t.replace("[C]", c) in r:
                return c.upper()
    for c in CHOICES:
        if r == c or any(r.startswith(c + p) for p in ".,:)"):
            return c.upper()
    if "would be a." in r or 'would be "a.' in r:
        return "A"
    return None


def score_choice(reply: str, reference: str, seed_key: str) -> dict:
    """{pred, parsed, correct}: an unparsed reply is a seeded random guess (official behaviour)."""
    pred = extract_choice(reply)
    parsed = pred is not None
    if pred is None:
        pred = random.Random(f"mcq|{seed_key}").choice("ABCD")
    return {"pred": pred, "parsed": parsed, "correct": pred == reference.strip().upper()}
