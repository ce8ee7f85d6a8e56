"""Fixtures for generation tests: a tiny random OsumEChat + tiny tokenizer wrapped in EChat."""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_helpers import make_bot  # noqa: E402


@pytest.fixture(scope="module")
def bot(tiny_tokenizer):
    return make_bot(tiny_tokenizer)


@pytest.fixture(scope="module")
def wav():
    g = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(16000, generator=g)  # 1 s of noise at 16 kHz


@pytest.fixture
def force_im_end(bot):
    """A processor forcing <|im_end|> as the 4th text token (deterministic phase switch)."""
    im_end = bot.decoder.ids.im_end

    def proc(state, logits):
        if state.phase == "text" and len(state.text_ids) == 3:
            out = torch.full_like(logits, float("-inf"))
            out[im_end] = 0.0
            return out
        if state.phase == "text":
            logits = logits.clone()
            logits[im_end] = float("-inf")
        return logits

    return proc
