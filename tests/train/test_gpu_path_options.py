"""Options of the GPU training path, checked on CPU: the fused AdamW switch (through
osum_echat/device.py), bf16 autocast over fp32 weights, and opt-in torch.compile of the LLM
decoder layers (same loss and gradients as eager)."""

from __future__ import annotations

import pytest
import torch

from osum_echat import device as devlib
from osum_echat.model.batch import Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate
from osum_echat.model.build import build_model
from osum_echat.train.config import TrainConfig
from osum_echat.train.engine import TorchEngine


def batch():
    exs = []
    for i, frames in enumerate((80, 50)):
        g = torch.Generator().manual_seed(i)
        exs.append(Example([TextSegment([5, 6, 7]), SpeechInSegment(torch.randn(frames, 80, generator=g)),
                            TextSegment([10, 11, 12], supervised=True),
                            SpeechOutSegment([4096, 1, 2, 3, 4096], supervised=True)], key=str(i)))
    return collate(exs, 2048)


def engine(cfg, **train) -> TorchEngine:
    torch.manual_seed(0)
    model = build_model(cfg).train()
    return TorchEngine(model, TrainConfig(accum_grad=1, warmup_steps=0, **train), torch.device("cpu"), distributed=False)


def test_fused_optimizer_switch(tiny_model_cfg):
    assert devlib.fused_optimizer_supported(torch.device("cuda"))
    assert devlib.fused_optimizer_supported(torch.device("cpu"))
    assert not devlib.fused_optimizer_supported(torch.device("meta"))
    fused = engine(tiny_model_cfg, dtype="fp32", fused_optimizer=True).optimizer
    plain = engine(tiny_model_cfg, dtype="fp32", fused_optimizer=False).optimizer
    assert fused.defaults["fused"] is True and not plain.defaults.get("fused")
    assert plain.defaults["foreach"] is True


def test_bf16_autocast_keeps_fp32_weights_and_grads(tiny_model_cfg):
    eng = engine(tiny_model_cfg, dtype="bf16")
    seen = []
    hook = eng.model.llm_body().layers[0].mlp.down_proj.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype))
    out = eng.forward_backward(batch(), boundary=True)
    hook.remove()
    assert seen == [torch.bfloat16]  # matmuls run in bf16 ...
    assert torch.isfinite(out["loss"])
    params = [p for p in eng.model.parameters() if p.grad is not None]
    assert params and all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params)


@pytest.mark.slow
def test_compile_llm_layers_matches_eager(tiny_model_cfg):
    """train.compile: the decoder layers are compiled in place; loss and gradients equal eager."""
    eager = engine(tiny_model_cfg, dtype="fp32")
    compiled = engine(tiny_model_cfg, dtype="fp32", compile=True)
    layer = compiled.model.llm_body().layers[0]
    assert getattr(layer, "_compiled_call_impl", None) is not None
    b = batch()
    le = eager.forward_backward(b, boundary=True)["loss"]
    lc = compiled.forward_backward(b, boundary=True)["loss"]
    assert torch.allclose(le, lc, atol=1e-5)
    ge = eager.model.llm_body().layers[1].mlp.up_proj.weight.grad
    gc = compiled.model.llm_body().layers[1].mlp.up_proj.weight.grad
    assert torch.allclose(ge, gc, atol=1e-5)
