"""Memory planner: exact parameter counts, exact static terms after a real step, activation
formulas against the tensors autograd really saves, scaling of the terms, the CLI, and the
24 GB fine-tuning config's planned peak."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from osum_echat.config import load_config
from osum_echat.model.batch import Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate
from osum_echat.model.build import build_model
from osum_echat.model.trainable import part_of
from osum_echat.train.config import TrainConfig
from osum_echat.train.memory_activations import Workload
from osum_echat.train.memory_measure import saved_tensors, state_bytes
from osum_echat.train.memory_plan import GB, PlanOptions, count_params, effective_model, fitting_options, plan_memory

REPO = Path(__file__).resolve().parents[2]
SMALL = ["model.llm.hidden_size=128", "model.llm.intermediate_size=352", "model.llm.num_heads=4",
         "model.llm.num_kv_heads=2", "model.llm.num_layers=3", "model.llm.vocab_size=1500",
         "model.encoder.d_model=64", "model.adapter.d_model=64", "model.encoder.ffn_dim=256"]
LORA = ["model.lora.enable=true", "model.trainable=[adapter,lora,speech]", "model.lora.dropout=0.1"]


def small_cfg(*extra: str):
    return load_config(REPO / "conf/model/tiny.yaml", SMALL + list(extra)).model


def example(frames: int, seed: int) -> Example:
    g = torch.Generator().manual_seed(seed)
    return Example([TextSegment(list(range(10, 30))), SpeechInSegment(torch.randn(frames, 80, generator=g)),
                    TextSegment(list(range(50, 80)), supervised=True),
                    SpeechOutSegment([4096] + list(range(200)) + [4096], supervised=True)], key=f"e{seed}")


def workload_of(batch, frames: int) -> Workload:
    """The planner's description of a batch of ``n`` equal-shaped examples, padding included."""
    n = batch.num_examples
    w = Workload(audio_s=frames / 100, prompt_tokens=0, reply_tokens=0, examples=n)
    sup = batch.num_targets / n
    w = dataclasses.replace(w, reply_tokens=sup)
    return dataclasses.replace(w, prompt_tokens=batch.kinds.shape[1] - w.positions_per_example)


@pytest.mark.parametrize("extra", [[], LORA, ["model.trainable=[adapter]"], ["model.trainable=[llm,speech]"]])
def test_parameter_counts_equal_the_real_model(extra):
    cfg = small_cfg(*extra)
    pc = count_params(cfg)
    model = build_model(cfg)
    per_part, train = {}, {}
    for name, p in model.named_parameters():
        per_part[part_of(name)] = per_part.get(part_of(name), 0) + p.numel()
        if p.requires_grad:
            train[part_of(name)] = train.get(part_of(name), 0) + p.numel()
    assert pc.per_part == per_part and pc.trainable_per_part == train
    assert pc.total == sum(p.numel() for p in model.parameters())
    assert pc.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("extra", [[], LORA])
def test_static_terms_are_exact_after_a_real_step(extra):
    """fp32 torch engine: weights, gradients and AdamW moments held after a step are exactly
    the planner's figures."""
    from osum_echat.train.engine import TorchEngine

    cfg = small_cfg(*extra)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    engine = TorchEngine(model, TrainConfig(dtype="fp32", accum_grad=1, lr=1e-4, warmup_steps=0),
                         torch.device("cpu"), distributed=False)
    batch = collate([example(300, 0)], 1500)
    engine.forward_backward(batch, boundary=True)
    measured = state_bytes(model, engine.optimizer)
    engine.optimizer.step()
    measured["optimizer"] = state_bytes(model, engine.optimizer)["optimizer"]
    plan = plan_memory(cfg, PlanOptions(dtype="fp32", device="cpu", workload=workload_of(batch, 300)))
    for k in ("weights", "gradients", "optimizer"):
        assert plan.terms[k] == measured[k], k


@pytest.mark.parametrize("extra,dtype,n", [([], "fp32", 2), ([], "bf16", 1), (["model.llm.activation_checkpointing=true"], "fp32", 2),
                                           (LORA, "bf16", 2), (LORA + ["model.llm.activation_checkpointing=true"], "bf16", 1)])
def test_activation_formula_matches_saved_tensors(extra, dtype, n):
    """What autograd keeps for backward (counted per unique storage) is within 10 % of the
    planner's activation terms (LLM + encoder + adapter + the loss's saved gradients)."""
    cfg = small_cfg(*extra)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    # unequal lengths: rows are padded, as in real batches (the planner assumes a padding tail)
    batch = collate([example(400 - 40 * s, s) for s in range(n)], 1500)
    with saved_tensors(model) as rec:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            model(batch)
    measured = rec.totals()["activations"]
    plan = plan_memory(cfg, PlanOptions(dtype=dtype, device="cpu", workload=workload_of(batch, 400 - 20 * (n - 1))))
    t = plan.terms
    predicted = (t["activations_llm"] + t.get("activations_encoder", 0) + t.get("activations_adapter", 0)
                 + t["loss_saved_grads"])
    assert abs(predicted / measured - 1) < 0.10, (predicted, measured)


def test_terms_scale_as_expected():
    cfg = small_cfg()
    w = Workload(audio_s=4.0, prompt_tokens=20, reply_tokens=100, examples=2)
    base = plan_memory(cfg, PlanOptions(workload=w))
    ckpt = plan_memory(cfg, PlanOptions(workload=w, llm_checkpointing=True))
    assert ckpt.terms["activations_llm"] < base.terms["activations_llm"] / 3
    assert ckpt.terms["autocast_copies"] < base.terms["autocast_copies"]
    double = plan_memory(cfg, PlanOptions(workload=w.scaled(2.0)))
    assert double.terms["activations_llm"] == pytest.approx(2 * base.terms["activations_llm"], rel=1e-6)
    z = {s: plan_memory(cfg, PlanOptions(zero=s, gpus=4, workload=w)) for s in (1, 2, 3)}
    one = plan_memory(cfg, PlanOptions(zero=1, gpus=1, workload=w))
    assert z[3].terms["weights"] == pytest.approx(one.terms["weights"] / 4)
    assert z[1].terms["weights"] == one.terms["weights"] and z[2].terms["weights"] == one.terms["weights"]
    assert z[2].terms["gradients"] == pytest.approx(one.terms["gradients"] / 4) == z[3].terms["gradients"]
    assert z[1].terms["gradients"] == one.terms["gradients"]
    assert z[1].terms["optimizer"] == pytest.approx(one.terms["optimizer"] / 4)
    assert one.terms["weights"] == 2 * base.params.total and base.terms["weights"] == 4 * base.params.total
    lora = plan_memory(cfg, PlanOptions(workload=w, lora=True))
    assert lora.params.trainable < base.params.trainable and lora.terms["optimizer"] < base.terms["optimizer"]
    cpu = plan_memory(cfg, PlanOptions(workload=w, device="cpu"))
    assert not cpu.allowances and base.allowances["cuda_context"] > 0
    assert base.total == pytest.approx(base.allocated + sum(base.allowances.values()))


def test_effective_model_switches_lora_in_place_of_llm():
    cfg = small_cfg("model.trainable=[encoder,adapter,llm,speech]")
    eff = effective_model(cfg, PlanOptions(lora=True, llm_checkpointing=True))
    assert eff.lora.enable and "lora" in eff.trainable and "llm" not in eff.trainable
    assert eff.llm.activation_checkpointing and not cfg.lora.enable  # the input is not modified


def test_fitting_options_and_cli(capsys):
    from osum_echat.bin.plan_memory import main

    cfg = small_cfg()
    rows = fitting_options(cfg, PlanOptions(), budget_gb=1e-3)
    assert rows[0][0] == "as given" and not any(ok for _, _, ok in rows)
    assert any(ok for _, _, ok in fitting_options(cfg, PlanOptions(), budget_gb=100))
    assert main(["--config", str(REPO / "conf/model/tiny.yaml"), "--json", "--zero", "3", "--gpus", "2",
                 "--micro_batch_tokens", "900", "--budget_gb", "2"] + SMALL) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_gb"] > out["allocated_gb"] > 0 and out["fits"] and out["fits"][0]["fits"]
    assert main(["--config", str(REPO / "conf/model/tiny.yaml"), "--lora"] + SMALL) == 0
    text = capsys.readouterr().out
    assert "activations_llm" in text and "total" in text and "lora True" in text


def test_finetune_24gb_config_plans_under_22_gb():
    """conf/finetune_24gb.yaml on the release architecture: a 30 s utterance with a 400-token
    reply plans at <= 22 GB per card (allowances included)."""
    cfg = load_config(REPO / "conf/finetune_24gb.yaml")
    m = cfg.model
    assert m.lora.enable and "encoder" not in m.trainable and "llm" not in m.trainable
    assert m.llm.activation_checkpointing and cfg.train.dtype == "bf16"
    assert m.llm.hidden_size == 2048 and m.llm.num_layers == 36  # the release architecture
    plan = plan_memory(m, PlanOptions(dtype=cfg.train.dtype, workload=Workload(audio_s=30, reply_tokens=400)))
    assert 3.4e9 < plan.params.total < 3.6e9
    assert plan.total <= 22 * GB, plan.total / GB
    full = plan_memory(m, PlanOptions(lora=False, workload=Workload(audio_s=30, reply_tokens=400)))
    assert full.total > 24 * GB  # full fine-tuning would not fit: LoRA is what makes it fit
