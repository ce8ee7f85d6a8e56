"""Convert HumDial-EIBench's empathetic-response task (task 3) to the echat manifest.

HumDial-EIBench (ASLP-lab, human-recorded multi-turn dialogues, Chinese and English) is the
closest released stand-in for the unreleased EChat-eval. Its task-3 evaluation reads a JSONL of
dialogues ``{"dialogue_id", "turns": [{"input_emotion" | "emotion", "input_text" | "text",
"input_audio" | "audio" | "wav", ...}, ...]}`` and evaluates the reply to the **second turn whose
emotion is not neutral**, with every turn up to it as context. The converter keeps that choice:
one ``emotion`` item per dialogue with the target turn's user audio and emotion label; the earlier
turns become the judge's context in ``query`` (the model itself answers the target turn alone:
the echat suite is single-turn). Dialogues without such a turn, without audio or with an emotion
outside the label set are skipped and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from osum_echat.eval.labels import canonical
from osum_echat.eval.store import read_jsonl

logger = logging.getLogger(__name__)
AUDIO_FIELDS = ("input_audio", "audio", "wav", "input_wav", "user_audio")


def _get(turn: dict, *names: str) -> str:
    for n in names:
        if turn.get(n):
            return str(turn[n])
    return ""


def target_turn(turns: list[dict]) -> int | None:
    """Index of the second non-neutral turn, or None."""
    seen = 0
    for i, t in enumerate(turns):
        if _get(t, "input_emotion", "emotion").lower() != "neutral":
            seen += 1
            if seen == 2:
                return i
    return None


def convert(path: str | Path, lang: str | None = None) -> tuple[list[dict], Counter]:
    """(manifest items, skip counts by reason) of one HumDial task-3 JSONL file; audio paths are
    made absolute relative to the file's folder."""
    root = Path(path).resolve().parent
    items, skipped = [], Counter()
    for n, d in enumerate(read_jsonl(path), 1):
        turns = d.get("turns") or []
        i = target_turn(turns)
        if i is None:
            skipped["no_second_non_neutral_turn"] += 1
            continue
        t = turns[i]
        audio = _get(t, *AUDIO_FIELDS)
        emo = canonical("emotion", _get(t, "input_emotion", "emotion"))
        if not audio:
            skipped["no_user_audio"] += 1
            continue
        if emo is None:
            skipped["unknown_emotion"] += 1
            continue
        context = [f"User({_get(u, 'input_emotion', 'emotion')}): {_get(u, 'input_text', 'text')}" for u in turns[:i]]
        query = _get(t, "input_text", "text")
        items.append({"key": str(d.get("dialogue_id") or f"humdial_{n:05d}"), "category": "emotion",
                      "wav": str(audio if Path(audio).is_absolute() else root / audio),
                      "labels": {"emotion": emo}, "lang": lang,
                      "query": "\n".join(context + [f"User: {query}"]) if context else query})
    for reason, c in skipped.items():
        logger.warning("HumDial %s: %d dialogues skipped (%s)", path, c, reason)
    return items, skipped
