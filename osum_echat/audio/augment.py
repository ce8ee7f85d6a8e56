"""Training-time feature augmentation: SpecAugment masks and SpecSub (segment substitution).

Both take an explicit ``random.Random`` so the data pipeline stays reproducible and
resumable. Inputs are not modified; a new tensor is returned.
"""

from __future__ import annotations

import random

import torch


def spec_aug(
    feats: torch.Tensor, rng: random.Random, num_t_mask: int = 2, num_f_mask: int = 2,
    max_t: int = 50, max_f: int = 10,
) -> torch.Tensor:
    """Zero ``num_t_mask`` time bands (<= max_t frames) and ``num_f_mask`` frequency bands
    (<= max_f bins) of features (T, F)."""
    out = feats.clone()
    t_len, f_len = out.shape
    for _ in range(num_t_mask):
        start = rng.randint(0, max(t_len - 1, 0))
        width = rng.randint(1, max_t)
        out[start : min(t_len, start + width), :] = 0
    for _ in range(num_f_mask):
        start = rng.randint(0, max(f_len - 1, 0))
        width = rng.randint(1, max_f)
        out[:, start : min(f_len, start + width)] = 0
    return out


def spec_sub(feats: torch.Tensor, rng: random.Random, max_t: int = 30, num_t_sub: int = 3) -> torch.Tensor:
    """Replace ``num_t_sub`` random segments (<= max_t frames) of features (T, F) by an
    earlier segment of the same utterance."""
    out = feats.clone()
    t_len = out.shape[0]
    for _ in range(num_t_sub):
        if t_len <= 2:
            break
        start = rng.randint(0, t_len - 1)
        width = rng.randint(1, max_t)
        end = min(t_len, start + width)
        pos = rng.randint(0, start)  # source segment starts before the target
        out[start:end, :] = feats[start - pos : end - pos, :]
    return out
