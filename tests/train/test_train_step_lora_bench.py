"""tools/bench/train_step.py --lora / --dtype / --frozen_dtype on a small model: the flags, the
fine-tuning trainable set (frozen encoder and LLM base, LoRA + adapter + speech train), frozen
weights built in bf16 with fp32 trainable ones, one real step, and the planner's weights term
for the same storage."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from osum_echat.config import load_config
from osum_echat.model.trainable import part_of
from osum_echat.train.config import TrainConfig
from osum_echat.train.engine import TorchEngine
from osum_echat.train.memory_plan import PlanOptions, plan_memory

REPO = Path(__file__).resolve().parents[2]
SMALL = ["model.llm.hidden_size=128", "model.llm.intermediate_size=352", "model.llm.num_heads=4",
         "model.llm.num_kv_heads=2", "model.llm.num_layers=2", "model.llm.vocab_size=1500",
         "model.encoder.d_model=64", "model.adapter.d_model=64", "model.encoder.ffn_dim=256",
         "model.adapter.ffn_dim=256", "model.adapter.num_layers=1"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_step_bench", REPO / "tools/bench/train_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def small_model_cfg(bench, argv: list[str]):
    args = bench.parse_args(argv + SMALL)
    path, overrides = bench.config_source(args)
    return args, load_config(path, overrides).model


def test_flags_parse(bench):
    args = bench.parse_args(["--release", "--device", "cpu", "--dtype", "bf16", "--lora",
                             "--frozen_dtype", "bf16", "--steps", "1", "--warmup", "0"])
    assert (args.release, args.lora, args.dtype, args.frozen_dtype, args.steps, args.warmup) == (
        True, True, "bf16", "bf16", 1, 0)
    path, _ = bench.config_source(args)
    assert path.name == "finetune_24gb.yaml"
    defaults = bench.parse_args([])
    assert (defaults.lora, defaults.dtype, defaults.frozen_dtype) == (False, None, "fp32")
    with pytest.raises(SystemExit):
        bench.parse_args(["--dtype", "fp16"])


def test_release_lora_config_is_the_24gb_set(bench):
    args = bench.parse_args(["--release", "--lora"])
    cfg = load_config(*bench.config_source(args)).model
    assert cfg.lora.enable and cfg.llm.activation_checkpointing
    assert sorted(cfg.trainable) == ["adapter", "lora", "speech"]
    assert cfg.llm.num_layers == 36 and cfg.llm.hidden_size == 2048


def test_lora_bf16_frozen_weights_and_one_step(bench):
    _, cfg = small_model_cfg(bench, ["--lora", "--dtype", "bf16", "--frozen_dtype", "bf16"])
    torch.manual_seed(0)
    model = bench.build_bench_model(cfg, "bf16").train()
    parts_trained, lora = set(), 0
    for name, p in model.named_parameters():
        part = part_of(name)
        assert p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16), name
        if p.requires_grad:
            parts_trained.add(part)
            lora += part == "lora"
        else:
            assert part in ("encoder", "llm"), name  # only the encoder and LLM base are frozen
    assert parts_trained == {"adapter", "lora", "speech"} and lora > 0
    assert model.llama_model.is_gradient_checkpointing
    assert torch.get_default_dtype() == torch.float32  # restored after the build
    dtypes = bench.weight_dtypes(model)
    assert dtypes["bfloat16"] > 0 and dtypes["float32"] > 0

    engine = TorchEngine(model, TrainConfig(dtype="bf16", accum_grad=1, lr=1e-3, warmup_steps=0),
                         torch.device("cpu"), distributed=False)
    from osum_echat.model.batch import Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate

    g = torch.Generator().manual_seed(0)
    ex = Example([TextSegment(list(range(10, 20))), SpeechInSegment(torch.randn(200, 80, generator=g)),
                  TextSegment(list(range(30, 40)), supervised=True),
                  SpeechOutSegment([4096] + list(range(50)) + [4096], supervised=True)], key="e0")
    out = engine.forward_backward(collate([ex], 1500), boundary=True)
    assert math.isfinite(float(out["loss"].detach()))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n][0]
    before = lora_b.detach().clone()
    # every trainable parameter the forward uses got a gradient (ln_speech is never applied)
    assert all(p.grad is not None for n, p in model.named_parameters()
               if p.requires_grad and not n.startswith("ln_speech."))
    engine.step()
    assert not torch.equal(before, lora_b.detach())  # the LoRA matrices moved
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_plan_weights_match_bf16_frozen_storage(bench):
    _, cfg = small_model_cfg(bench, ["--lora"])
    model = bench.build_bench_model(cfg, "bf16")
    real = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    plan = plan_memory(cfg, PlanOptions(dtype="bf16", device="cpu", frozen_dtype="bf16"))
    fp32 = plan_memory(cfg, PlanOptions(dtype="bf16", device="cpu"))
    assert plan.terms["weights"] == real
    assert plan.terms["weights"] < fp32.terms["weights"]
    assert plan.terms["autocast_copies"] < fp32.terms["autocast_copies"]  # no LLM copies
    assert plan.terms["activations_llm"] < fp32.terms["activations_llm"]  # bf16 residual stream
    with pytest.raises(ValueError, match="frozen_dtype"):
        plan_memory(cfg, PlanOptions(zero=1, frozen_dtype="bf16"))
