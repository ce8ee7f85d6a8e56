"""Training-side precision: bf16 autocast over fp32 weights (DDP engine) and bf16 weights
(DeepSpeed bf16) both take float32 features and give finite losses and gradients."""

from __future__ import annotations

import torch

from osum_echat.device import autocast
from osum_echat.model.batch import Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate
from osum_echat.model.build import build_model


def _batch():
    g = torch.Generator().manual_seed(0)
    exs = [Example([TextSegment([1, 2, 3]), SpeechInSegment(torch.randn(frames, 80, generator=g)),
                    TextSegment([4, 5, 6], supervised=True),
                    SpeechOutSegment([4096, 7, 8, 4096], supervised=True)], key=f"k{frames}")
           for frames in (100, 61)]
    return collate(exs, 2048)


def test_bf16_autocast_over_fp32_weights(tiny_model_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg)
    batch = _batch()
    assert batch.feats.dtype == torch.float32
    ref = model(batch)["loss"].item()
    with autocast(torch.device("cpu"), "bf16"):
        out = model(batch)
    out["loss"].backward()
    assert abs(out["loss"].item() - ref) < 0.05 * ref
    assert all(p.dtype == torch.float32 for p in model.parameters())
    g = model.encoder.embed.conv[0].weight.grad
    assert g is not None and g.dtype == torch.float32 and bool(torch.isfinite(g).all())


def test_bf16_weights_without_autocast(tiny_model_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg)
    ref = model(_batch())["loss"].item()
    model.to(torch.bfloat16)
    out = model(_batch())
    out["loss"].backward()
    assert abs(out["loss"].item() - ref) < 0.05 * ref
    g = model.encoder.embed.conv[0].weight.grad
    assert g is not None and g.dtype == torch.bfloat16 and bool(torch.isfinite(g.float()).all())


def test_mixed_dtypes_llm_bf16_encoder_fp32(tiny_model_cfg):
    """Upstream's build: the LLM in bf16, encoder and adapter in fp32."""
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg).eval()
    model.llama_model.to(torch.bfloat16)
    model.speech_token_emded.to(torch.bfloat16)
    model.speech_head.to(torch.bfloat16)
    with torch.no_grad():
        out = model(_batch())
    assert torch.isfinite(out["loss"])
