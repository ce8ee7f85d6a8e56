"""Helpers for the data pipeline tests (tiny audio, lists, configs, batch comparison).

Imported by path (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from osum_echat.audio.io import save_wav
from osum_echat.data.config import DataConfig

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from make_upstream_format import prefix_map, session_copy  # noqa: E402



def fake_prefix_map() -> dict[str, str]:
    """``./common_utils/fake_data/`` (with and without ``./``) -> the generated upstream-format
    folder (the same folder as the ``upstream_fake`` fixture)."""
    return prefix_map(session_copy())

CORPUS = [
    "hello world, how are you today?", "今天天气真好，我们去公园吧。", "<think>用户很开心<think end>",
    "transcribe this audio please", "请把这段语音转成文字", "<HAPPY><ADULT><MALE>", "i am fine thanks",
    "年龄为:<&&>,性别为:<MALE>", "那真是太好了，恭喜你顺利通过！", "what is the weather like",
]


def data_cfg(**kw) -> DataConfig:
    """A test config: fake-data path mapping, no augmentation unless asked."""
    cfg = DataConfig(path_prefix_map=fake_prefix_map())
    cfg.augment.spec_aug = False
    cfg.augment.spec_sub = False
    for k, v in kw.items():
        obj = cfg
        *head, last = k.split("__")
        for h in head:
            obj = getattr(obj, h)
        setattr(obj, last, v)
    cfg.validate()
    return cfg


def make_wav(path: Path, seconds: float = 0.5, sr: int = 16000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    save_wav(path, rng.standard_normal(int(seconds * sr)).astype(np.float32) * 0.1, sr)
    return str(path)


def write_jsonl(path: Path, records: list) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)
    return str(path)


def run_loader(cfg: DataConfig, lists: dict, tok, train: bool = False, limit: int | None = None, **kw):
    """All batches (or the first ``limit``) and the loader (``kw``: more build_loader options)."""
    from osum_echat.data.loader import build_loader

    ld = build_loader(cfg, lists, tok, train=train, **kw)
    out = []
    for b in ld:
        out.append(b)
        if limit is not None and len(out) >= limit:
            break
    return out, ld


def same_batch(a, b) -> bool:
    import torch

    def same_or_none(x, y) -> bool:
        return (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))

    return (a.keys == b.keys and a.tasks == b.tasks and torch.equal(a.input_ids, b.input_ids)
            and torch.equal(a.labels, b.labels) and torch.equal(a.kinds, b.kinds)
            and torch.equal(a.feats, b.feats) and torch.equal(a.audio_slots, b.audio_slots)
            and same_or_none(a.wavs, b.wavs) and same_or_none(a.wav_lengths, b.wav_lengths)
            and a.augment == b.augment)
