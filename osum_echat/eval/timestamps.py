"""SRWT (``<TRANSCRIBE> <ALIGN>``) timestamp error: average absolute shift (AAS) of time marks.

Time marks are ``<N>`` tags holding a number (``<12>``, ``<1.2>``); the upstream label layout is
not public, so the parser makes no assumption about where marks sit: the marks of reference and
hypothesis are paired in order. ``unit_ms`` is the length of one unit (100 ms: the 0.1 s units of
the OSUM labels). Marks without a partner are counted, not scored.
"""

from __future__ import annotations

import re

_MARK = re.compile(r"<\s*(\d+(?:\.\d+)?)\s*>")


def time_marks(text: str) -> list[float]:
    """Numbers of the ``<N>`` marks in order."""
    return [float(m) for m in _MARK.findall(text or "")]


def has_time_marks(text: str) -> bool:
    return bool(_MARK.search(text or ""))


def timestamp_error(ref: str, hyp: str, unit_ms: float = 100.0) -> dict:
    """{pairs, unpaired, abs_ms_sum, aas_ms} of one item (aas_ms None without pairs)."""
    r, h = time_marks(ref), time_marks(hyp)
    n = min(len(r), len(h))
    total = sum(abs(a - b) for a, b in zip(r[:n], h[:n])) * unit_ms
    return {"pairs": n, "unpaired": abs(len(r) - len(h)), "abs_ms_sum": total,
            "aas_ms": total / n if n else None}


def strip_time_marks(text: str) -> str:
    return _MARK.sub(" ", text or "")
