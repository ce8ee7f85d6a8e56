"""Optimizer parameter groups and learning-rate schedules.

* Only parameters with ``requires_grad`` reach the optimizer (upstream passed frozen ones too).
* Weight decay applies to matrices only: norms, biases and other 1-D parameters get none.
* One group per (trainable part, decay) pair, so ``train.lr_scale`` can give each part its own
  learning rate (e.g. a freshly initialised adapter at 10x the LLM's rate).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from osum_echat.model.trainable import part_of
from osum_echat.train.config import TrainConfig

logger = logging.getLogger(__name__)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (part, decay). Each group carries ``part`` and
    ``lr_scale`` (its learning rate is ``cfg.lr * lr_scale`` at the schedule's peak)."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        # Norm weights and biases are 1-D and get no decay; 2-D tables (embeddings) are matrices
        # and decay like upstream's.
        decay = p.ndim >= 2
        groups.setdefault((part_of(name), decay), []).append(p)
    out = []
    for (part, decay), params in sorted(groups.items()):
        scale = cfg.lr_scale.get(part, 1.0)
        out.append({"params": params, "part": part, "decay": decay, "lr_scale": scale,
                    "lr": cfg.lr * scale, "weight_decay": cfg.weight_decay if decay else 0.0})
    if not out:
        raise ValueError("no trainable parameters: check model.trainable")
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool = True) -> torch.optim.Optimizer:
    """AdamW (or Adam) over :func:`param_groups`; the fused implementation where the device
    has one, else the multi-tensor (foreach) one."""
    groups = param_groups(model, cfg)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps}
    if cfg.optimizer == "adam":  # plain Adam: no decoupled decay
        for g in groups:
            g["weight_decay"] = 0.0
    if fused:
        try:  # one fused kernel per step (~6x faster than the per-tensor loop on CPU)
            return cls(groups, fused=True, **kwargs)
        except (RuntimeError, ValueError) as err:
            logger.info("fused %s unavailable (%s); using foreach", cls.__name__, err)
    return cls(groups, foreach=True, **kwargs)


def warmup_lr_factor(step: int, warmup: int) -> float:
    """Upstream WarmupLR: ``W^0.5 * min(n^-0.5, n * W^-1.5)`` with ``n = step + 1``;
    linear ramp to 1 at ``n = W``, then ``sqrt(W / n)``; ``W = 0``: ``n^-0.5``."""
    n = step + 1
    if warmup == 0:
        return n ** -0.5
    return warmup ** 0.5 * min(n ** -0.5, n * warmup ** -1.5)


def cosine_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup over ``warmup`` updates, then cosine from 1 to ``min_ratio`` at ``total``."""
    n = step + 1
    if warmup and n <= warmup:
        return n / warmup
    progress = min(1.0, (n - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupSchedule(LRScheduler):
    """lr of group g at update ``last_epoch`` = ``base_lr_g * factor(last_epoch)``.

    ``last_epoch`` counts completed optimizer updates, so the first update uses factor(0)
    (as upstream, whose scheduler ran with ``n = last_epoch + 1``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int,
                 min_ratio: float = 0.0, last_epoch: int = -1) -> None:
        self.kind, self.warmup, self.total, self.min_ratio = kind, warmup, total, min_ratio
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        if self.kind == "warmuplr":
            return warmup_lr_factor(step, self.warmup)
        if self.kind == "cosine":
            return cosine_factor(step, self.warmup, self.total, self.min_ratio)
        return 1.0

    def get_lr(self) -> list[float]:
        f = self.factor(max(0, self.last_epoch))
        return [base * f for base in self.base_lrs]


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> WarmupSchedule:
    return WarmupSchedule(optimizer, cfg.scheduler, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
