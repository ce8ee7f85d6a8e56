"""Shared fixtures: tiny tokenizer, the real Qwen2 BPE (when dashscope is installed), tiny model
config, and a data set in upstream's on-disk formats (``tests/fixtures/make_upstream_format.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from make_upstream_format import session_copy  # noqa: E402

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
def upstream_fake() -> Path:
    """Upstream-format raw/shard/combine folder, generated once per session (10 utterances of
    10.96 s, as upstream's sample); its lists use ``./common_utils/fake_data/`` paths."""
    return session_copy()
