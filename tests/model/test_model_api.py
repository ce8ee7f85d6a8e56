"""Researcher-facing model API: ``speech_token_num`` and per-position losses."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from osum_echat.model.batch import (AUDIO, IGNORE_ID, Example, SpeechInSegment, SpeechOutSegment,
                                    TextSegment, collate)
from osum_echat.model.build import build_model
from osum_echat.model.loss import joint_cross_entropy, reference_joint_cross_entropy


def _examples(g: torch.Generator) -> list[Example]:
    return [
        Example([TextSegment([1, 2, 3]), SpeechInSegment(torch.randn(100, 80, generator=g)),
                 TextSegment([4, 5, 6], supervised=True),
                 SpeechOutSegment([4096, 7, 8, 4096], supervised=True)], key="a"),
        Example([TextSegment([9, 10]), TextSegment([11, 12, 13, 14], supervised=True)], key="b"),
    ]


def test_speech_token_num(tiny_model_cfg):
    from osum_echat.config import ConfigError, load_config

    model = build_model(tiny_model_cfg)
    assert model.speech_token_num == tiny_model_cfg.speech_token_num == 4097
    assert model.speech_token_num == model.speech_ids.input_bos == model.speech_ids.boundary + 1
    b = collate(_examples(torch.Generator().manual_seed(0))[:1], model.text_vocab_size, model.speech_token_num)
    audio = (b.kinds[0] == AUDIO).nonzero()[:, 0]
    # the markers around the speech input are the ids the model's embedding reserves for them
    assert b.input_ids[0, audio[0] - 1] == 4097 and b.input_ids[0, audio[-1] + 1] == 4098
    small = build_model(dataclasses.replace(tiny_model_cfg, speech_token_num=101))
    assert small.speech_token_num == 101 and small.speech_token_emded.num_embeddings == 103
    with pytest.raises(ConfigError, match="speech_token_num"):
        load_config(None, ["model.speech_token_num=101"])
    assert load_config(None, ["model.speech_token_num=101", "data.speech_token_num=101"]).model.speech_token_num == 101


def test_echat_refuses_mismatched_speech_token_num(tiny_tokenizer, tiny_model_cfg):
    from osum_echat.config import ExperimentConfig
    from osum_echat.generate.echat import EChat

    cfg = ExperimentConfig(model=tiny_model_cfg)
    model = build_model(dataclasses.replace(tiny_model_cfg, speech_token_num=101), apply_trainable=False)
    with pytest.raises(ValueError, match="speech_token_num"):
        EChat(model, tiny_tokenizer, cfg)


def test_per_token_loss_matches_loss_and_full_logits(tiny_model_cfg):
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(tiny_model_cfg, loss_chunk_size=3)).eval()
    batch = collate(_examples(torch.Generator().manual_seed(0)), model.text_vocab_size, model.speech_token_num)
    with torch.no_grad():
        out = model(batch, per_token=True)
        plain = model(batch)
        h = model.hidden_states(batch)
    ptl = out["per_token_loss"]
    sel = batch.labels != IGNORE_ID
    assert ptl.shape == batch.labels.shape and ptl.dtype == torch.float32
    assert bool((ptl[~sel] == 0).all()) and bool((ptl[sel] > 0).all())
    assert torch.allclose(ptl[sel].mean(), out["loss"], atol=1e-6)
    assert torch.allclose(out["loss"], plain["loss"]) and "per_token_loss" not in plain
    # position by position against the full-logits cross-entropy
    ref = reference_joint_cross_entropy(h[sel], batch.labels[sel], model.lm_head_weight,
                                        model.speech_head.weight, model.speech_head.bias)
    assert torch.allclose(ptl[sel], ref, atol=1e-5)
    # with the sample norm the loss is weighted, the per-position values are not
    sample = build_model(dataclasses.replace(tiny_model_cfg, loss_norm="sample")).eval()
    sample.load_state_dict(model.state_dict())
    with torch.no_grad():
        so = sample(batch, per_token=True)
    assert torch.allclose(so["per_token_loss"], ptl, atol=1e-6)
    assert not torch.allclose(so["loss"], out["loss"])


def test_per_token_loss_is_differentiable(tiny_model_cfg):
    """Gradients through a weighted sum of per-position losses equal those of the same sum
    over full logits (what a sequence-level preference objective needs)."""
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(tiny_model_cfg, loss_chunk_size=4))
    batch = collate(_examples(torch.Generator().manual_seed(0)), model.text_vocab_size, model.speech_token_num)
    out = model(batch, per_token=True)
    c = torch.linspace(-1.0, 2.0, batch.labels.numel()).reshape(batch.labels.shape)
    obj = (out["per_token_loss"] * c).sum() + 0.5 * out["loss"]
    params = [model.lm_head_weight, model.speech_head.weight, model.speech_head.bias,
              model.speech_llama_proj.weight]
    got = torch.autograd.grad(obj, params)
    h = model.hidden_states(batch)
    sel = batch.labels != IGNORE_ID
    ref = reference_joint_cross_entropy(h[sel], batch.labels[sel], model.lm_head_weight,
                                        model.speech_head.weight, model.speech_head.bias)
    want = torch.autograd.grad((ref * c[sel]).sum() + 0.5 * ref.mean(), params)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_joint_cross_entropy_row_grads():
    torch.manual_seed(2)
    h = torch.randn(19, 16, requires_grad=True)
    wt, ws = torch.randn(30, 16, requires_grad=True), torch.randn(7, 16, requires_grad=True)
    bs = torch.randn(7, requires_grad=True)
    t, g = torch.randint(0, 37, (19,)), torch.randn(19)
    total, rows, _ = joint_cross_entropy(h, t, wt, ws, bs, chunk_size=5, row_grads=True)
    ref = reference_joint_cross_entropy(h, t, wt, ws, bs)
    for a, b in zip(torch.autograd.grad((rows * g).sum() + total, (h, wt, ws, bs)),
                    torch.autograd.grad((ref * g).sum() + ref.sum(), (h, wt, ws, bs))):
        assert torch.allclose(a, b, atol=1e-5)
    _, rows_plain, _ = joint_cross_entropy(h, t, wt, ws, bs, chunk_size=5)
    assert not rows_plain.requires_grad and torch.allclose(rows_plain, rows)
