"""The mini codec as a streaming vocoder for the realtime server (recipe stage 7).

``build(codec=PATH)`` returns an object with the token2wav streaming interface the server
takes (``sample_rate``; ``stream(code_iter, voice=None)`` -> float32 chunks), so
``python -m osum_echat.bin.serve --vocoder recipes/mini/local/serve_vocoder.py:build
--vocoder_arg codec=codec.pt`` speaks with the codec the mini model was trained on.

Each chunk of ``chunk`` codes is decoded (Griffin-Lim) together with ``context`` codes before
it, and only the new codes' samples are kept, so joins fall inside already-converged audio.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, Sequence, Union

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mini_codec import HOP, SR, STACK, MiniCodec  # noqa: E402

SAMPLES_PER_CODE = HOP * STACK  # 640 samples = 40 ms at 16 kHz


class MiniVocoder:
    sample_rate = SR

    def __init__(self, codec: MiniCodec, chunk: int = 8, first_chunk: int = 4, context: int = 4,
                 n_iter: int = 16) -> None:
        self.codec, self.chunk, self.first, self.context, self.n_iter = codec, chunk, first_chunk, context, n_iter

    def _render(self, ctx: list[int], new: list[int]) -> np.ndarray:
        """Samples of ``new`` (exactly 640 a code: the STFT edge is padded with silence)."""
        wav = self.codec.decode(ctx + new, n_iter=self.n_iter).numpy().astype(np.float32)
        n = len(new) * SAMPLES_PER_CODE
        if len(wav) < n:
            wav = np.concatenate([np.zeros(n - len(wav), np.float32), wav])
        return wav[len(wav) - n:]

    def stream(self, code_iter: Iterable[Union[int, Sequence[int]]], voice=None) -> Iterator[np.ndarray]:
        done: list[int] = []
        pending: list[int] = []
        for item in code_iter:
            pending += [int(item)] if isinstance(item, (int, np.integer)) else [int(c) for c in item]
            need = self.first if not done else self.chunk
            if len(pending) >= need:
                yield self._render(done[-self.context:] if done else [], pending)
                done, pending = done + pending, []
        if pending:
            yield self._render(done[-self.context:] if done else [], pending)


def build(codec: str, chunk: str = "8", first_chunk: str = "4", n_iter: str = "16") -> MiniVocoder:
    """Factory for ``--vocoder``: values arrive as strings (``--vocoder_arg k=v``)."""
    return MiniVocoder(MiniCodec.load(codec), int(chunk), int(first_chunk), n_iter=int(n_iter))
