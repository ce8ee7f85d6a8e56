"""Label text normalisation (the rules the released checkpoints were trained with)."""

from __future__ import annotations

import re

_CJK = "\u4e00-\u9fff"
_SPACE_AROUND_CJK = re.compile(rf"\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+")
_SPACE_BEFORE_LT = re.compile(r"\s+<")
_SPACE_AFTER_LT = re.compile(r"<\s+")
_SPACE_BEFORE_GT = re.compile(r"\s+>")
_SPACE_AFTER_GT = re.compile(r">\s+")
_LEADING_TAG = re.compile(r"^\s*<([^<>]+)>\s*")


def normalize_label(text: str, task: str = "") -> str:
    """Normalise a supervised text.

    * newlines become spaces;
    * white space on either side of a CJK ideograph (U+4E00-U+9FFF) is removed;
    * white space next to ``<`` and ``>`` is removed (``"好 <HAPPY> <ADULT>"`` ->
      ``"好<HAPPY><ADULT>"``; the space *inside* ``<think end>`` stays);
    * the text is lower-cased only for the plain transcription task ``<TRANSCRIBE>``.
    """
    text = text.replace("\r", " ").replace("\n", " ")
    text = _SPACE_AROUND_CJK.sub("", text)
    for pattern, repl in ((_SPACE_BEFORE_LT, "<"), (_SPACE_AFTER_LT, "<"),
                          (_SPACE_BEFORE_GT, ">"), (_SPACE_AFTER_GT, ">")):
        text = pattern.sub(repl, text)
    text = text.strip()
    if task.strip() == "<TRANSCRIBE>":
        text = text.lower()
    return text


def split_leading_tag(text: str) -> tuple[str | None, str]:
    """``"<开心>真好"`` -> ("开心", "真好"); (None, text) when the text has no leading tag."""
    m = _LEADING_TAG.match(text)
    if not m:
        return None, text
    return m.group(1), text[m.end():]
