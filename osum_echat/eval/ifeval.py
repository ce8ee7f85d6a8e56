"""IFEval instruction checks (VoiceBench ``ifeval`` subset), strict and loose.

The official scorer runs Google's IFEval instruction registry; this module re-implements its
checks (24 of its 25 instruction ids, same rules; docs/eval.md lists the differences). Relations
are ``"less than"`` (count < N) and ``"at least"`` (count >= N). ``language:response_language``
needs a language detector and is not covered: an unknown id makes the item unscorable (counted),
never silently passed or failed. Loose checking, as in IFEval, also accepts the reply with the
first and/or last line removed and/or ``*`` removed.
Word counts use ``\\w+`` tokens (as IFEval); approximated: sentences are split at ``. ! ?``
followed by space (IFEval handles abbreviations), capital words are ``\\w+`` tokens (IFEval uses
nltk's word tokenizer), and the all-capital / all-lower-case checks skip IFEval's English
language detection.
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
    paras = re.split(r"\n\n", t)
    count = sum(1 for p in paras if p.strip())
    nth = k["nth_paragraph"]
    if nth > count or not paras[nth - 1].strip():
        return False
    word = paras[nth - 1].strip().split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for ch in word:  # the word ends at the first punctuation mark
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    return count == k["num_paragraphs"] and first == k["first_word"].lower()


def _sections(t: str, k: dict) -> bool:
    parts = re.split(r"\s?" + k["section_spliter"].strip() + r"\s?\d+\s?", t)
    return len(parts) - 1 >= k["num_sections"]


def _paragraph_count(t: str, n: int) -> bool:
    parts = re.split(r"\s?\*\*\*\s?", t)
    if any(not p.strip() for p in parts[1:-1]):  # an empty paragraph between dividers
        return False
    return sum(1 for p in parts if p.strip()) == n


def _postscript(t: str, k: dict) -> bool:
    marker = k["postscript_marker"].strip()
    pattern = {"P.P.S": r"\s*p\.\s?p\.\s?s.*$", "P.S.": r"\s*p\.\s?s\..*$"}.get(
        marker, r"\s*" + marker.lower() + r".*$")
    return bool(re.findall(pattern, t.lower(), flags=re.M))


def _two_responses(t: str, k: dict) -> bool:
    parts = t.split("******")
    if any(not p.strip() for p in parts[1:-1]):
        return False
    valid = [p for p in parts if p.strip()]
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def _highlights(t: str, k: dict) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", t) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", t) if h.removeprefix("**").removesuffix("**").strip()]
    return len(single) + len(double) >= k["num_highlights"]


def _bullets(t: str, k: dict) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", t, flags=re.M)
    dashes = re.findall(r"^\s*-.*$", t, flags=re.M)
    return len(stars) + len(dashes) == k["num_bullets"]


def _title(t: str, k: dict) -> bool:
    return any(m.lstrip("<").rstrip(">").strip() for m in re.findall(r"<<[^\n]+>>", t))


CHECKS: dict[str, Check] = {
    "keywords:existence": lambda t, k: all(re.search(w, t, re.I) for w in k["keywords"]),
    "keywords:frequency": lambda t, k: _rel(len(re.findall(k["keyword"].strip(), t, re.I)), k["frequency"],
                                            k["relation"]),
    "keywords:forbidden_words": lambda t, k: not any(re.search(r"\b" + w + r"\b", t, re.I)
                                                     for w in k["forbidden_words"]),
    "keywords:letter_frequency": lambda t, k: _rel(t.lower().count(k["letter"].strip().lower()), k["let_frequency"],
                                                   k["let_relation"]),
    "length_constraints:number_words": lambda t, k: _rel(len(_words(t)), k["num_words"], k["relation"]),
    "length_constraints:number_sentences": lambda t, k: _rel(len(_sentences(t)), k["num_sentences"],
                                                             k["relation"]),
    "length_constraints:number_paragraphs": lambda t, k: _paragraph_count(t, k["num_paragraphs"]),
    "length_constraints:nth_paragraph_first_word": _nth_paragraph,
    "detectable_content:number_placeholders": lambda t, k: len(re.findall(r"\[.*?\]", t)) >= k["num_placeholders"],
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:constrained_response": lambda t, k: any(
        o in t.strip() for o in ("My answer is yes.", "My answer is no.", "My answer is maybe.")),
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:json_format": lambda t, k: _json_ok(t),
    "detectable_format:title": _title,
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": lambda t, k: t.strip().lower().startswith(k["prompt_to_repeat"].strip().lower()),
    "startend:end_checker": lambda t, k: t.strip().strip('"').lower().endswith(k["end_phrase"].strip().lower()),
    "startend:quotation": lambda t, k: len(v := t.strip()) > 1 and v[0] == '"' and v[-1] == '"',
    "change_case:capital_word_frequency": lambda t, k: _rel(
        sum(1 for w in _words(t) if w.isupper()), k["capital_frequency"], k["capital_relation"]),
    # IFEval also requires langdetect to say English; not checked here (docs/eval.md)
    "change_case:english_capital": lambda t, k: t.isupper(),
    "change_case:english_lowercase": lambda t, k: t.islower(),
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
        kw = {a: b for a, b in (kw or {}).items() if b}  # IFEval drops empty arguments
        fn = CHECKS[iid]
        try:
            strict.append(bool(reply.strip()) and bool(fn(reply, kw)))
            loose.append(any(v.strip() and fn(v, kw) for v in loose_variants(reply)))
        except KeyError as err:  # IFEval would draw a random argument: unscorable instead
            return {"strict": [], "loose": [], "unknown": [f"{iid} (missing argument {err})"]}
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
