"""Speech recognition with word timestamps (SRWT, task ``<TRANSCRIBE> <ALIGN>``): parse a
time-stamped transcript into ``(token, start, end)`` records and score the average alignment
shift (AAS, in ms) of a hypothesis against a reference.

Format. Each English word or Chinese character carries its start and end time in seconds at
0.1 s resolution inside ``<>``, after the token: ``你<0.0,0.2>好<0.2,0.5>hello<0.5,0.9>``. The
parser is lenient because decoded text varies: the separator may be ``,`` ``，`` ``-`` ``~``
``/`` or spaces, times may carry an ``s`` suffix, the pair may be split into ``<start><end>``,
and a transcript whose first item is a time pair is read as time-before-token. Text between two
pairs that is several CJK characters and/or words is one token (it got one time span); a
time pair with no token, or a token with no time pair, is counted in ``unparsed``.

AAS (OSUM's SRWT metric): reference and hypothesis tokens are aligned by edit distance on the
token text (case-insensitive); for every matched pair the shift is
``(|start_h - start_r| + |end_h - end_r|) / 2``; AAS is the mean shift over matched pairs, in ms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"(\d+(?:\.\d+)?)\s*s?"
_PAIR = re.compile(rf"<\s*{_NUM}\s*(?:[,，\-~/]|\s)\s*{_NUM}\s*>")
_SPLIT_PAIR = re.compile(rf"<\s*{_NUM}\s*>\s*<\s*{_NUM}\s*>")


@dataclass(frozen=True)
class TimedToken:
    token: str
    start: float  # seconds
    end: float  # seconds


def _pairs(text: str) -> list[tuple[int, int, float, float]]:
    """(match start, match end, t0, t1) of every time pair, in text order."""
    found = [(m.start(), m.end(), float(m.group(1)), float(m.group(2))) for m in _PAIR.finditer(text)]
    taken = [(a, b) for a, b, _, _ in found]
    for m in _SPLIT_PAIR.finditer(text):
        if not any(a <= m.start() < b for a, b in taken):
            found.append((m.start(), m.end(), float(m.group(1)), float(m.group(2))))
    return sorted(found)


def parse_srwt(text: str) -> tuple[list[TimedToken], int]:
    """Time-stamped transcript -> (records, unparsed count). Tokens are stripped; start <= end
    is enforced by swapping reversed pairs."""
    pairs = _pairs(text)
    if not pairs:
        return [], int(bool(text.strip()))
    time_first = not text[: pairs[0][0]].strip()
    pieces = []  # text belonging to each pair
    if time_first:
        for i, (_, b, _, _) in enumerate(pairs):
            nxt = pairs[i + 1][0] if i + 1 < len(pairs) else len(text)
            pieces.append(text[b:nxt])
    else:
        prev = 0
        for a, b, _, _ in pairs:
            pieces.append(text[prev:a])
            prev = b
    out: list[TimedToken] = []
    unparsed = 0 if time_first else int(bool(text[pairs[-1][1]:].strip()))
    for piece, (_, _, t0, t1) in zip(pieces, pairs):
        token = " ".join(piece.split())
        if not token:
            unparsed += 1
            continue
        out.append(TimedToken(token, min(t0, t1), max(t0, t1)))
    return out, unparsed


def _align(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """Index pairs of equal tokens on a minimum-edit-distance path."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i and j:
        if ref[i - 1] == hyp[j - 1] and d[i][j] == d[i - 1][j - 1]:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j - 1] + 1:
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def alignment_shift(ref: list[TimedToken], hyp: list[TimedToken]) -> tuple[float, int]:
    """(summed shift in ms over matched tokens, number of matched tokens)."""
    pairs = _align([t.token.lower() for t in ref], [t.token.lower() for t in hyp])
    total = sum((abs(hyp[j].start - ref[i].start) + abs(hyp[j].end - ref[i].end)) / 2 for i, j in pairs)
    return 1000.0 * total, len(pairs)


def srwt_scores(pairs) -> dict:
    """Corpus AAS over (ref text, hyp text) pairs: {aas_ms, matched, ref_tokens, hyp_tokens,
    match_rate, unparsed_ref, unparsed_hyp}."""
    shift = 0.0
    matched = ref_n = hyp_n = bad_r = bad_h = 0
    for r_text, h_text in pairs:
        r, ur = parse_srwt(r_text)
        h, uh = parse_srwt(h_text)
        s, k = alignment_shift(r, h)
        shift += s
        matched += k
        ref_n += len(r)
        hyp_n += len(h)
        bad_r += ur
        bad_h += uh
    return {"aas_ms": shift / matched if matched else 0.0, "matched": matched, "ref_tokens": ref_n,
            "hyp_tokens": hyp_n, "match_rate": matched / ref_n if ref_n else 0.0,
            "unparsed_ref": bad_r, "unparsed_hyp": bad_h}
