"""Helpers for the serving tests (imported by path: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "generate"))
from gen_helpers import make_bot  # noqa: E402,F401


def tone(seconds: float, freq: float = 220.0, amp: float = 0.3, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal (harmonics + a little noise), float32 (N,)."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    x = x + 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (amp * x / np.abs(x).max()).astype(np.float32)


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def greedy_request(bot, task: str, wav: torch.Tensor, max_new: int, key: str = "utt"):
    req = bot.request(bot.sample(task, wav, key=key))
    req.policy = dataclasses.replace(req.policy, greedy=True, max_new_tokens=max_new)
    return req
