"""Decoded tokens of one row -> think / text deltas and speech codes, as they arrive.

The same rules as :meth:`osum_echat.generate.decoder.Decoder.stream` (the whole text is
re-decoded each step so multi-token characters come out whole; an incomplete UTF-8 character
waits for the rest), with the think part (between ``<think>`` and ``<think end>``) reported
separately from the answer.
"""

from __future__ import annotations

from osum_echat.generate.decoder import SPEECH
from osum_echat.text.prompts import THINK_CLOSE, THINK_OPEN


def think_and_answer(text: str) -> tuple[str, str]:
    """Possibly unfinished reply text -> (think so far, answer so far)."""
    start = text.find(THINK_OPEN)
    if start == -1:
        return "", text
    body = text[start + len(THINK_OPEN):]
    end = body.find(THINK_CLOSE)
    if end == -1:
        return body, ""
    return body[:end], body[end + len(THINK_CLOSE):].lstrip()


class ReplyStream:
    """Feed ``(state, token, phase)``; get ``[("think" | "text", delta) | ("codes", [code])]``."""

    def __init__(self, tokenizer, im_end: int, boundary: int) -> None:
        self.tok = tokenizer
        self.im_end = im_end
        self.boundary = boundary
        self.think = ""
        self.text = ""
        self.codes: list[int] = []

    def push(self, text_ids: list[int], token: int, phase: str) -> list[tuple[str, object]]:
        if phase == SPEECH:
            if token == self.boundary:
                return []
            self.codes.append(token)
            return [("codes", [token])]
        if token == self.im_end:
            return []
        ids = text_ids[:-1] if text_ids and text_ids[-1] == self.im_end else text_ids
        decoded = self.tok.decode(ids, skip_special_tokens=True)
        if decoded.endswith("\ufffd"):
            return []
        think, text = think_and_answer(decoded)
        out: list[tuple[str, object]] = []
        for kind, new, old in (("think", think, self.think), ("text", text, self.text)):
            if len(new) > len(old) and new.startswith(old):
                out.append((kind, new[len(old):]))
        self.think, self.text = think, text
        return out
