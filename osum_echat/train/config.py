"""Training configuration (the ``train:`` section). Extended by the training loop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    seed: int = 777
    dtype: str = "bf16"
