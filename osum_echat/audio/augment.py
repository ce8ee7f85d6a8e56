"""Training-time feature augmentation: SpecAugment masks and SpecSub (segment substitution).

Both take an explicit ``random.Random`` so the data pipeline stays reproducible and
resumable. Inputs are not modified; a new tensor is returned.

Each is a *plan* (the random draws, which need only the feature shape) and its application:
``spec_aug(feats, rng)`` equals ``apply_plan(feats, (("aug", spec_aug_plan(T, F, rng)),))``. The
loader draws the plan where it runs and, when the features are computed on the accelerator
(``data.features_on_device``), the model applies it there to the same effect.
"""

from __future__ import annotations

import random

import torch


def spec_aug_plan(t_len: int, f_len: int, rng: random.Random, num_t_mask: int = 2, num_f_mask: int = 2,
                  max_t: int = 50, max_f: int = 10) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """The (start, end) time bands and frequency bands that SpecAugment zeroes."""
    t_bands, f_bands = [], []
    for _ in range(num_t_mask):
        start = rng.randint(0, max(t_len - 1, 0))
        width = rng.randint(1, max_t)
        t_bands.append((start, min(t_len, start + width)))
    for _ in range(num_f_mask):
        start = rng.randint(0, max(f_len - 1, 0))
        width = rng.randint(1, max_f)
        f_bands.append((start, min(f_len, start + width)))
    return tuple(t_bands), tuple(f_bands)


def spec_sub_plan(t_len: int, rng: random.Random, max_t: int = 30,
                  num_t_sub: int = 3) -> tuple[tuple[int, int, int], ...]:
    """The (start, end, shift) segments that SpecSub replaces by ``[start - shift, end - shift)``."""
    subs = []
    for _ in range(num_t_sub):
        if t_len <= 2:
            break
        start = rng.randint(0, t_len - 1)
        width = rng.randint(1, max_t)
        end = min(t_len, start + width)
        pos = rng.randint(0, start)  # source segment starts before the target
        subs.append((start, end, pos))
    return tuple(subs)


def _apply_aug(feats: torch.Tensor, plan) -> torch.Tensor:
    out = feats.clone()
    t_bands, f_bands = plan
    for start, end in t_bands:
        out[start:end, :] = 0
    for start, end in f_bands:
        out[:, start:end] = 0
    return out


def _apply_sub(feats: torch.Tensor, plan) -> torch.Tensor:
    out = feats.clone()
    for start, end, pos in plan:
        out[start:end, :] = feats[start - pos : end - pos, :]
    return out


def apply_plan(feats: torch.Tensor, plan: tuple) -> torch.Tensor:
    """Apply a chain of plans to features (T, F) on their device: ``plan`` is a tuple of
    ``("aug", spec_aug_plan)`` / ``("sub", spec_sub_plan)`` steps, in order."""
    for kind, p in plan:
        if kind == "aug":
            feats = _apply_aug(feats, p)
        elif kind == "sub":
            feats = _apply_sub(feats, p)
        else:
            raise ValueError(f"unknown augmentation step {kind!r}")
    return feats


def spec_aug(
    feats: torch.Tensor, rng: random.Random, num_t_mask: int = 2, num_f_mask: int = 2,
    max_t: int = 50, max_f: int = 10,
) -> torch.Tensor:
    """Zero ``num_t_mask`` time bands (<= max_t frames) and ``num_f_mask`` frequency bands
    (<= max_f bins) of features (T, F)."""
    t_len, f_len = feats.shape
    return _apply_aug(feats, spec_aug_plan(t_len, f_len, rng, num_t_mask, num_f_mask, max_t, max_f))


def spec_sub(feats: torch.Tensor, rng: random.Random, max_t: int = 30, num_t_sub: int = 3) -> torch.Tensor:
    """Replace ``num_t_sub`` random segments (<= max_t frames) of features (T, F) by an
    earlier segment of the same utterance."""
    return _apply_sub(feats, spec_sub_plan(feats.shape[0], rng, max_t, num_t_sub))
