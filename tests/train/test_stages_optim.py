"""Stage configs load and build (3B on the meta device); trainable parts, optimizer groups,
learning-rate schedules."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_helpers import REPO  # noqa: E402
from osum_echat.config import load_config  # noqa: E402
from osum_echat.model.build import build_model  # noqa: E402
from osum_echat.model.trainable import part_of  # noqa: E402
from osum_echat.train.config import TrainConfig  # noqa: E402
from osum_echat.train.optim import build_optimizer, build_scheduler, warmup_lr_factor  # noqa: E402

STAGES = {"stage1_understanding": {"encoder", "adapter"}, "stage2_generation": {"llm", "speech"},
          "stage3_empathy": {"encoder", "adapter", "llm", "speech"}}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_configs_build_on_meta(stage):
    cfg = load_config(REPO / "conf" / f"{stage}.yaml", ["model.llm.init=config"])
    assert cfg.model.llm.num_layers == 36 and cfg.train.dtype == "bf16"
    with torch.device("meta"):
        model = build_model(cfg.model)
    parts = {part_of(n) for n, p in model.named_parameters() if p.requires_grad}
    assert parts == STAGES[stage]
    groups = build_optimizer(model, cfg.train).param_groups
    assert {g["part"] for g in groups} == STAGES[stage]
    assert all(g["lr"] == pytest.approx(cfg.train.lr * cfg.train.lr_scale.get(g["part"], 1.0)) for g in groups)


def test_frozen_parts_get_no_gradient_and_no_optimizer_slot(tiny_model_cfg, tiny_tokenizer):
    from osum_echat.model.batch import Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate
    from osum_echat.train.engine import TorchEngine

    tiny_model_cfg.trainable = ["adapter", "speech"]
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg)
    cfg = TrainConfig(dtype="fp32", accum_grad=1, lr=1e-3, weight_decay=0.1, lr_scale={"adapter": 3.0},
                      scheduler="constant")
    engine = TorchEngine(model, cfg, torch.device("cpu"), distributed=False)
    ex = Example(segments=[TextSegment([1, 2, 3]), SpeechInSegment(torch.randn(120, 80)),
                           TextSegment([4, 5, 6], supervised=True), SpeechOutSegment([4096, 7, 8, 9, 4096], True)])
    batch = collate([ex, ex], text_vocab_size=model.text_vocab_size)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    engine.forward_backward(batch, boundary=True)
    for n, p in model.named_parameters():
        if not n.startswith("ln_speech."):  # kept for the released key layout, never applied
            assert (p.grad is not None) == p.requires_grad, n
    opt_ids = {id(p) for g in engine.optimizer.param_groups for p in g["params"]}
    assert opt_ids == {id(p) for p in model.parameters() if p.requires_grad}
    for g in engine.optimizer.param_groups:
        assert g["weight_decay"] == (0.1 if g["decay"] else 0.0)
        assert all((p.ndim >= 2) == g["decay"] for p in g["params"])
        assert g["lr"] == pytest.approx(1e-3 * (3.0 if g["part"] == "adapter" else 1.0))
    engine.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_schedules():
    # upstream WarmupLR: peak = base lr at n = W, linear before, inverse sqrt after
    assert warmup_lr_factor(1999, 2000) == pytest.approx(1.0)
    assert warmup_lr_factor(999, 2000) == pytest.approx(0.5)
    assert warmup_lr_factor(7999, 2000) == pytest.approx(0.5)
    assert warmup_lr_factor(3, 0) == pytest.approx(0.5)
    p = torch.nn.Parameter(torch.zeros(2, 2))
    for kind, checks in (("warmuplr", {0: 0.1, 9: 1.0, 39: 0.5}),
                         ("cosine", {0: 0.1, 9: 1.0, 54: 0.55, 99: 0.1}),
                         ("constant", {0: 1.0, 99: 1.0})):
        cfg = TrainConfig(lr=2.0, scheduler=kind, warmup_steps=10, max_steps=100, min_lr_ratio=0.1)
        opt = torch.optim.AdamW([p], lr=2.0)
        sched = build_scheduler(opt, cfg)
        seen = {}
        for step in range(100):
            seen[step] = opt.param_groups[0]["lr"] / 2.0
            opt.step()
            sched.step()
        for step, want in checks.items():
            assert math.isclose(seen[step], want, rel_tol=1e-6), (kind, step, seen[step], want)
