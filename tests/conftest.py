"""Shared fixtures: tiny tokenizer, the real Qwen2 BPE (when dashscope is installed), tiny model
config, and the upstream sample data folder (``../shared/reference_data/upstream_fake_data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
UPSTREAM_FAKE = SHARED / "reference_data" / "upstream_fake_data"

TINY_CORPUS = [
    "hello world, how are you today?", "今天天气真好，我们去公园吧。", "transcribe this audio please",
    "<think>the user sounds happy<think end>", "请把这段语音转成文字", "<HAPPY><ADULT><MALE>",
    "i am fine thanks", "what is the weather like", "那真是太好了，恭喜你顺利通过！",
]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from osum_echat.text.build_tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(TINY_CORPUS * 3, vocab_size=400, extra_tokens=["<think>", "<think end>"])


@pytest.fixture(scope="session")
def qwen_tokenizer():
    from osum_echat.text.build_tokenizer import build_qwen_tokenizer, find_qwen_tiktoken

    if find_qwen_tiktoken() is None:
        pytest.skip("the real Qwen BPE needs `pip install --no-deps dashscope==2.0.2`")
    return build_qwen_tokenizer()


@pytest.fixture
def tiny_model_cfg():
    from osum_echat.config import load_config

    return load_config(REPO / "conf" / "model" / "tiny.yaml").model


@pytest.fixture(scope="session")
def upstream_fake():
    if not UPSTREAM_FAKE.is_dir():
        pytest.skip(f"upstream sample data not found at {UPSTREAM_FAKE}")
    return UPSTREAM_FAKE
