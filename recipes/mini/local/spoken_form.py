"""Texts of the mini corpus in their spoken form, to score a transcript of the reply ASR
(``reply_asr.py``) against a label: the ASR spells what it hears (English letters, tone-numbered
pinyin), the labels and the model's replies are written text (Chinese characters for Mandarin).

* English: characters of the normalised text (``osum_echat.eval.wer`` normalisation, spaces
  not counted), i.e. the CER used everywhere else in the recipe.
* Mandarin: one toneless pinyin syllable per Chinese character ("现在九点" and
  "xian4 zai4 jiu3 dian3" are both ``xian zai jiu dian``): a character error rate measured on
  what is heard, which homophones (是 / 十 -> shi) and tones do not count against. The reading
  of each character comes from the corpus vocabulary (``vocab.py``); a character it does not
  know stays as it is, so it never matches a transcript syllable (an error, as it should be).
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from osum_echat.eval.wer import EditCounts, align, has_cjk, normalize_for_scoring, tokens  # noqa: E402

logger = logging.getLogger(__name__)
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_PINYIN = re.compile(r"^[a-zü]+[1-5](\s+[a-zü]+[1-5])*$")
_TONE = re.compile(r"[1-5]")
SENTENCE_DRAWS = 2000  # random_sentence("zh") draws: covers its templates (timers, channels) with certainty


def _pairs(value, depth: int = 0):
    """(characters, tone-numbered pinyin) pairs anywhere inside lists / tuples / dicts."""
    if depth > 6:
        return
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        chars, spoken = value[0], value[1].strip()
        if _CJK_CHAR.search(chars) and _PINYIN.match(spoken):
            yield chars, spoken
        return
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _pairs(v, depth + 1)


@lru_cache(maxsize=1)
def readings() -> dict[str, str]:
    """Chinese character -> toneless pinyin syllable, from every (characters, pinyin) pair of
    the vocabulary module's tables and of many sentences drawn from it. A character read two
    ways keeps its most frequent reading."""
    import vocab as V

    pairs = [p for name, val in vars(V).items() if not name.startswith("_") for p in _pairs(val)]
    rng = random.Random(0)
    pairs += [V.random_sentence("zh", rng) for _ in range(SENTENCE_DRAWS)]
    counts: dict[str, Counter] = {}
    for chars, spoken in pairs:
        cs, syl = _CJK_CHAR.findall(chars), spoken.split()
        if len(cs) != len(syl):
            logger.debug("skipped %r / %r: %d characters, %d syllables", chars, spoken, len(cs), len(syl))
            continue
        for c, s in zip(cs, syl):
            counts.setdefault(c, Counter())[_TONE.sub("", s)] += 1
    return {c: n.most_common(1)[0][0] for c, n in counts.items()}


def syllables(text: str) -> list[str]:
    """Mandarin units of a label or a transcript: characters -> their toneless reading (unknown
    ones kept), pinyin -> toneless syllables ("zai4jiu3" -> zai, jiu), other words kept."""
    table = readings()
    out: list[str] = []
    for tok in tokens(normalize_for_scoring(text), "word"):
        if _CJK_CHAR.fullmatch(tok):
            out.append(table.get(tok, tok))
        elif _TONE.search(tok):
            out += _TONE.sub(" ", tok).split()
        else:
            out.append(tok)
    return out


def spoken_units(text: str, lang: str) -> list[str]:
    """Scoring units: ``lang`` 'zh' -> :func:`syllables`, otherwise characters (no spaces)."""
    if lang == "zh":
        return syllables(text)
    return tokens(normalize_for_scoring(text), "char")


def spoken_form(text: str) -> str:
    """A text as the (toneless) reply ASR would write it: Chinese characters -> syllables."""
    return " ".join(syllables(text)) if has_cjk(text) else normalize_for_scoring(text)


def language(reference: str) -> str:
    """'zh' when the reference is written with Chinese characters, else 'en'."""
    return "zh" if has_cjk(reference) else "en"


def spoken_errors(reference: str, hypothesis: str, lang: str | None = None) -> EditCounts:
    """Edit counts of a transcript (or any text) against a reference, in spoken units of the
    reference's language."""
    lang = lang or language(reference)
    return align(spoken_units(reference, lang), spoken_units(hypothesis, lang))
