"""What generation returns: :class:`Reply` (whole answer) and :class:`Event` (streaming)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Reply:
    """One answer.

    think         chain of thought (text between ``<think>`` and ``<think end>``), '' if none
    text          the answer text (the whole text reply of non-think tasks)
    speech_codes  CosyVoice codes 0..4095 (no boundaries); [] for text tasks
    timings       ms / tokens/s figures (``prefill_ms``, ``first_token_ms``, ``decode_ms``,
                  ``total_ms``, ``new_tokens``, ``tokens_per_s``)
    stop_reason   text_end | speech_end | max_tokens | interrupted
    text_ids      the generated text ids (``<|im_end|>`` excluded)
    wav           22.05 kHz waveform when a token2wav model was attached, else None
    """

    think: str
    text: str
    speech_codes: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    stop_reason: str = ""
    text_ids: list[int] = field(default_factory=list)
    wav: Optional[np.ndarray] = None
    sample_rate: int = 0

    @property
    def full_text(self) -> str:
        """Think and answer in the trained layout (``<think>..<think end>answer``)."""
        from osum_echat.text.prompts import wrap_think

        return wrap_think(self.think, self.text) if self.think else self.text


@dataclass
class Event:
    """A streaming event.

    kind: ``text`` (``text`` = newly decoded characters, think included), ``think_end`` (the
    CoT is complete; ``text`` = the whole think), ``speech`` (``codes`` = new codes), ``done``
    (``reply`` = the final :class:`Reply`).
    """

    kind: str
    text: str = ""
    codes: list[int] = field(default_factory=list)
    reply: Optional[Reply] = None
