"""IFEval instruction checks (VoiceBench ``ifeval`` subset), strict and loose.

The official scorer runs Google's IFEval instruction registry; this module re-implements its
checks from their documented definitions (docs/eval.md lists which ids are covered). Relations
are ``"less than"`` (count < N) and ``"at least"`` (count >= N). ``language:response_language``
needs a language detector and is not covered: an unknown id makes the item unscorable (counted),
never silently passed or failed. Loose checking, as in IFEval, also accepts the reply with the
first and/or last line removed and/or ``*`` removed.
Word counts use ``\\w+`` tokens (as IFEval); sentences are split at ``. ! ?`` followed by space
(IFEval uses nltk's punkt: approximated).
"""

from __future__ import annotations

import json
import re
from typing import Callable

Check = Callable[[str, dict], bool]


def _rel(count: int, n: int, relation: str) -> bool:
    if relation == "less than":
        return count < n
    if relation == "at least":
        return count >= n
    raise ValueError(f"IFEval relation must be 'less than' or 'at least', got {relation!r}")


def _words(t: str) -> list[str]:
    return re.findall(r"\w+", t)


def _sentences(t: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", t.strip()) if s.strip()]


def _paragraphs(t: str, sep: str = r"\s?\*\*\*\s?") -> list[str]:
    return re.split(sep, t)


def _json_ok(t: str) -> bool:
    v = t.strip()
    for pre in ("```json", "```Json", "```JSON", "```"):
        v = v.removeprefix(pre)
    v = v.removesuffix("```").strip()
    try:
        json.loads(v)
    except ValueError:
        return False
    return True


def _nth_paragraph(t: str, k: dict) -> bool:
    paras = [p for p in re.split(r"\n\n", t)]
    n, nth = k["num_paragraphs"], k["nth_paragraph"]
    if len([p for p in paras if p.strip()]) != n or nth > len(paras):
        return False
    para = paras[nth - 1].strip()
    if not para:
        return False
    first = para.split()[0].strip().lstrip("'\"").rstrip(".,!?;:'\"").lower()
    return first == k["first_word"].lower()


def _sections(t: str, k: dict) -> bool:
    parts = re.split(r"\s?" + re.escape(k["section_spliter"]) + r"\s?\d+\s?", t)
    return len(parts) - 1 >= k["num_sections"]


CHECKS: dict[str, Check] = {
    "keywords:existence": lambda t, k: all(re.search(re.escape(w), t, re.I) for w in k["keywords"]),
    "keywords:frequency": lambda t, k: _rel(len(re.findall(re.escape(k["keyword"]), t, re.I)), k["frequency"],
                                            k["relation"]),
    "keywords:forbidden_words": lambda t, k: not any(re.search(r"\b" + re.escape(w) + r"\b", t, re.I)
                                                     for w in k["forbidden_words"]),
    "keywords:letter_frequency": lambda t, k: _rel(t.lower().count(k["letter"].lower()), k["let_frequency"],
                                                   k["let_relation"]),
    "length_constraints:number_words": lambda t, k: _rel(len(_words(t)), k["num_words"], k["relation"]),
    "length_constraints:number_sentences": lambda t, k: _rel(len(_sentences(t)), k["num_sentences"],
                                                             k["relation"]),
    "length_constraints:number_paragraphs": lambda t, k: (
        all(p.strip() for p in _paragraphs(t)[1:-1]) and len([p for p in _paragraphs(t) if p.strip()])
        == k["num_paragraphs"]),
    "length_constraints:nth_paragraph_first_word": _nth_paragraph,
    "detectable_content:number_placeholders": lambda t, k: len(re.findall(r"\[.*?\]", t)) >= k["num_placeholders"],
    "detectable_content:postscript": lambda t, k: re.search(
        r"\s*" + re.escape(k["postscript_marker"].lower()).replace(r"\.", r"\.?") + r".*$", t.lower(), re.M)
    is not None,
    "detectable_format:number_bullet_lists": lambda t, k: len(re.findall(r"^\s*[\*\-][^\*\-].*$", t, re.M))
    == k["num_bullets"],
    "detectable_format:constrained_response": lambda t, k: any(
        o in t for o in ("My answer is yes.", "My answer is no.", "My answer is maybe.")),
    "detectable_format:number_highlighted_sections": lambda t, k: sum(
        1 for h in re.findall(r"\*[^\n\*]*\*", t) + re.findall(r"\*\*[^\n\*]*\*\*", t)
        if h.strip("*").strip()) >= k["num_highlights"],
    "detectable_format:multiple_sections": _sections,
    "detectable_format:json_format": lambda t, k: _json_ok(t),
    "detectable_format:title": lambda t, k: any(m.strip() for m in re.findall(r"<<([^\n]+)>>", t)),
    "combination:two_responses": lambda t, k: (
        len(p := [x.strip() for x in t.split("******")]) == 2 and all(p) and p[0] != p[1]),
    "combination:repeat_prompt": lambda t, k: t.strip().lower().startswith(k["prompt_to_repeat"].strip().lower()),
    "startend:end_checker": lambda t, k: t.strip().strip('"').lower().endswith(k["end_phrase"].strip().lower()),
    "startend:quotation": lambda t, k: len(v := t.strip()) > 1 and v[0] == '"' and v[-1] == '"',
    "change_case:capital_word_frequency": lambda t, k: _rel(
        sum(1 for w in _words(t) if w.isupper()), k["capital_frequency"], k["capital_relation"]),
    "change_case:english_capital": lambda t, k: t == t.upper() and bool(re.search(r"[A-Z]", t)),
    "change_case:english_lowercase": lambda t, k: t == t.lower() and bool(re.search(r"[a-z]", t)),
    "punctuation:no_comma": lambda t, k: "," not in t,
}


def loose_variants(reply: str) -> list[str]:
    """The reply, without its first line, last line or both; each also with ``*`` removed."""
    lines = reply.split("\n")
    base = [reply, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return base + [b.replace("*", "") for b in base]


def check_item(reply: str, instruction_ids: list[str], kwargs: list[dict]) -> dict:
    """{strict: [bool], loose: [bool], unknown: [ids]} for one reply (kwargs with None dropped;
    a leading ``<1>``/``<2>``/``<3>`` marker is removed first, as the official scorer does)."""
    if reply[:3] in ("<1>", "<2>", "<3>"):
        reply = reply[3:].strip()
    unknown = [i for i in instruction_ids if i not in CHECKS]
    if unknown:
        return {"strict": [], "loose": [], "unknown": unknown}
    strict, loose = [], []
    for iid, kw in zip(instruction_ids, kwargs or [{}] * len(instruction_ids)):
        kw = {a: b for a, b in (kw or {}).items() if b is not None}
        fn = CHECKS[iid]
        strict.append(bool(reply.strip()) and fn(reply, kw))
        loose.append(any(v.strip() and fn(v, kw) for v in loose_variants(reply)))
    return {"strict": strict, "loose": loose, "unknown": []}


def aggregate(rows: list[dict]) -> dict:
    """Prompt- and instruction-level strict / loose accuracy (percent), the four numbers the
    official evaluator reports, and their mean ('final', the subset score used here: the
    official code does not show which of them the leaderboard takes)."""
    rows = [r for r in rows if not r["unknown"]]
    if not rows:
        return {"n": 0}
    out = {"n": len(rows)}
    for mode in ("strict", "loose"):
        out[f"{mode}_prompt"] = 100.0 * sum(all(r[mode]) for r in rows) / len(rows)
        flat = [x for r in rows for x in r[mode]]
        out[f"{mode}_instruction"] = 100.0 * sum(flat) / max(len(flat), 1)
    out["final"] = (out["strict_prompt"] + out["strict_instruction"] + out["loose_prompt"]
                    + out["loose_instruction"]) / 4
    return out
