"""Fixtures for the data pipeline tests: tokenizers."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data_helpers import CORPUS


@pytest.fixture(scope="session")
def tiny_tok():
    from osum_echat.text.build_tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(CORPUS * 3, vocab_size=400)


@pytest.fixture(scope="session")
def qwen_tok():
    from osum_echat.text.build_tokenizer import build_qwen_tokenizer, find_qwen_tiktoken

    if find_qwen_tiktoken() is None:
        pytest.skip("qwen.tiktoken (dashscope) not installed")
    return build_qwen_tokenizer()
