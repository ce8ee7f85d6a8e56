"""Generation configuration (the ``generate:`` section). Extended by the decoder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerateConfig:
    max_new_tokens: int = 2000
