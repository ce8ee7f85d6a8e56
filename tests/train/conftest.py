"""Fixtures for the training tests: a tiny tokenizer folder, tiny data lists of every family
(generated audio) and a tiny experiment config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_helpers import CORPUS, REPO, make_wav, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory) -> str:
    from osum_echat.text.build_tokenizer import train_bpe_tokenizer

    d = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(CORPUS * 3, vocab_size=400, out_dir=d, extra_tokens=["<think>", "<think end>"])
    return str(d)


@pytest.fixture(scope="session")
def tiny_lists(tmp_path_factory) -> dict[str, str]:
    """Small lists for all four families plus a CV list mixing them."""
    d = tmp_path_factory.mktemp("lists")
    s2t = [{"key": f"asr{i}", "wav": make_wav(d / f"a{i}.wav", 0.3 + 0.05 * i, i), "txt": CORPUS[i % 9],
            "task": "<TRANSCRIBE>"} for i in range(8)]
    s2s = [{"key": f"s2s{i}", "wav": make_wav(d / f"s{i}.wav", 0.4 + 0.05 * i, 50 + i), "txt": "i am fine thanks",
            "task": "<S2TCHAT> <TEXT2TOKEN>", "extra": {"speech_token": [(7 * j + i) % 4096 for j in range(20 + i)]}}
           for i in range(6)]
    t2s = [{"key": f"tts{i}", "txt": CORPUS[i % 9], "task": "<TEXT2TOKEN>",
            "extra": {"speech_token": [(3 * j + i) % 4096 for j in range(25 + i)]}} for i in range(6)]
    t2t = [{"key": f"t2t{i}", "txt": CORPUS[(i + 3) % 9], "task": "<TEXT2TEXT>",
            "extra": {"question": CORPUS[i % 9]}} for i in range(6)]
    out = {"s2t": write_jsonl(d / "s2t.jsonl", s2t), "s2s": write_jsonl(d / "s2s.jsonl", s2s),
           "t2s": write_jsonl(d / "t2s.jsonl", t2s), "t2t": write_jsonl(d / "t2t.jsonl", t2t)}
    out["cv"] = write_jsonl(d / "cv.jsonl", s2t[:2] + s2s[:2] + t2s[:2] + t2t[:2])
    return out


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory, tok_dir, upstream_fake) -> str:
    d = tmp_path_factory.mktemp("conf")
    cfg = d / "tiny_train.yaml"
    cfg.write_text(f"""base: {REPO / 'conf/model/tiny.yaml'}
text: {{tokenizer: {tok_dir}}}
model: {{llm: {{vocab_size: 512}}}}
data:
  prompt_files: [{REPO / 'conf/prompts/understanding.yaml'}]
  path_prefix_map: {{"./common_utils/fake_data/": "{upstream_fake}/"}}
  augment: {{spec_aug: false, spec_sub: false}}
  batch: {{batch_type: static, batch_size: 2, shuffle_size: 4, sort_size: 2}}
  num_workers: 0
  drop_log_interval: 0
train:
  dtype: fp32
  lr: 2.0e-3
  scheduler: constant
  warmup_steps: 0
  accum_grad: 1
  max_steps: 6
  log_interval: 2
  save_interval: 3
""")
    return str(cfg)
