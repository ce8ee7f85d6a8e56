"""Helpers for generation tests (imported by path: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def make_bot(tokenizer, overrides=(), seed: int = 0):
    from osum_echat.config import load_config
    from osum_echat.generate.echat import EChat
    from osum_echat.model.build import build_model

    cfg = load_config(REPO / "conf" / "model" / "tiny.yaml", list(overrides))
    torch.manual_seed(seed)
    model = build_model(cfg.model, apply_trainable=False).eval()
    return EChat(model, tokenizer, cfg)
