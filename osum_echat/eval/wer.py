"""Error rates from our own Levenshtein alignment, with scoring normalisation.

Tokens: Chinese (CJK ideographs) count per character, Latin/digit words per word, so mixed
text ``"我用 iPhone 拍照"`` scores as ``我 用 iphone 拍 照``. Normalisation for scoring:
lower case, punctuation removed (ASCII and CJK), paralinguistic ``<TAG>``s removed, white
space collapsed. ``cer`` splits everything into characters (spaces dropped); ``wer`` uses the
mixed tokens (pure English: words).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_TAG = re.compile(r"<[^<>]*>")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def normalize_for_scoring(text: str, keep_tags: bool = False) -> str:
    """NFKC, tags removed (unless ``keep_tags``), punctuation -> space, lower case."""
    text = unicodedata.normalize("NFKC", text)
    if not keep_tags:
        text = _TAG.sub(" ", text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("P") or cat.startswith("S"):
            if ch == "'":  # keep English contractions
                out.append(ch)
            else:
                out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).lower().split())


def tokens(text: str, unit: str) -> list[str]:
    """Scoring units of normalised text: 'char' (every non-space character) or 'word'
    (CJK characters and Latin words)."""
    if unit == "char":
        return [c for c in text if not c.isspace()]
    if unit == "word":
        return _TOKEN.findall(text)
    raise ValueError(f"unit must be 'char' or 'word', got {unit!r}")


@dataclass
class EditCounts:
    """Substitutions, deletions, insertions, reference length."""

    sub: int = 0
    dele: int = 0
    ins: int = 0
    ref: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        return self.errors / self.ref if self.ref else float(self.errors > 0)

    def __iadd__(self, other: "EditCounts") -> "EditCounts":
        self.sub += other.sub
        self.dele += other.dele
        self.ins += other.ins
        self.ref += other.ref
        return self


def align(ref: list[str], hyp: list[str]) -> EditCounts:
    """Minimum-edit alignment (unit costs); ties prefer substitution, then deletion."""
    n, m = len(ref), len(hyp)
    # cost and (sub, del, ins) of the best path to each cell, one row at a time
    prev = [(j, 0, 0, j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            c, s, d, k = prev[j - 1]
            same = ref[i - 1] == hyp[j - 1]
            best = (c + (0 if same else 1), s + (0 if same else 1), d, k)
            c, s, d, k = prev[j]
            if c + 1 < best[0]:
                best = (c + 1, s, d + 1, k)
            c, s, d, k = cur[j - 1]
            if c + 1 < best[0]:
                best = (c + 1, s, d, k + 1)
            cur.append(best)
        prev = cur
    _, s, d, k = prev[m]
    return EditCounts(sub=s, dele=d, ins=k, ref=n)


def error_counts(ref: str, hyp: str, unit: str) -> EditCounts:
    """Normalise both texts and align them in ``unit`` ('char' for CER, 'word' for WER)."""
    return align(tokens(normalize_for_scoring(ref), unit), tokens(normalize_for_scoring(hyp), unit))


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))
