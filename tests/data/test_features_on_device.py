"""``data.features_on_device``: the loader yields waveforms + augmentation plans and the model
computes the features in one batched call; the result equals the loader's own features."""

from __future__ import annotations

import os
import random
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data_helpers import data_cfg, run_loader  # noqa: E402

from osum_echat.audio.augment import apply_plan, spec_aug, spec_aug_plan, spec_sub, spec_sub_plan  # noqa: E402


def test_plans_replay_spec_aug_and_spec_sub():
    feats = torch.randn(300, 80)
    for seed in range(5):
        want = spec_sub(spec_aug(feats, random.Random(seed)), random.Random(seed + 100))
        r1, r2 = random.Random(seed), random.Random(seed + 100)
        plan = (("aug", spec_aug_plan(300, 80, r1)), ("sub", spec_sub_plan(300, r2)))
        got = apply_plan(feats, plan)
        assert torch.equal(got, want) and not torch.equal(got, feats)
    with pytest.raises(ValueError, match="unknown augmentation"):
        apply_plan(feats, (("warp", ()),))


def _loader_pair(tok, lst, workers, text_vocab_size=None, **kw):
    """(loader features, device features) batches of one training pass with augmentation on."""
    out = []
    for on_device in (False, True):
        cfg = data_cfg(features_on_device=on_device, num_workers=workers, on_exhaust="drop",
                       augment__spec_aug=True, augment__spec_sub=True, batch__batch_size=3,
                       batch__batch_type="static", **kw)
        batches, ld = run_loader(cfg, {"all": lst}, tok, train=True, text_vocab_size=text_vocab_size)
        assert ld.drops.total() == 0
        out.append(batches)
    return out


@pytest.mark.parametrize("workers", [0, 1])
def test_device_features_equal_loader_features(tiny_tok, upstream_fake, workers):
    host, dev = _loader_pair(tiny_tok, str(upstream_fake / "raw/data.list"), workers)
    assert len(host) == len(dev) and sum(b.num_examples for b in dev) == 10
    masked = 0
    for a, b in zip(host, dev):
        assert b.wavs is not None and b.feats.shape[1] == 0 and a.wavs is None
        assert b.wavs.dtype == torch.float32  # 24 kHz source, resampled: not PCM any more
        assert torch.equal(b.feats_lengths, b.wav_lengths // 160)
        assert all(p is not None for p in b.augment)
        f = b.featurize()
        assert f.wavs is None and f.augment == []
        assert a.keys == f.keys and torch.equal(a.input_ids, f.input_ids) and torch.equal(a.labels, f.labels)
        assert torch.equal(a.feats_lengths, f.feats_lengths) and torch.equal(a.audio_slots, f.audio_slots)
        assert a.feats.shape == f.feats.shape
        assert torch.allclose(a.feats, f.feats, atol=1e-4)
        # the same SpecAugment bands were zeroed (the features themselves are never exactly 0)
        assert torch.equal(a.feats == 0, f.feats == 0)
        masked += int((f.feats == 0).sum())
    assert masked > 0  # augmentation was on


def test_16khz_pcm_travels_as_int16(tiny_tok, tmp_path):
    from data_helpers import make_wav, write_jsonl

    from osum_echat.data.pipeline import _compact_pcm

    x = torch.tensor([0.5, -1.0, 3 / 32768, 0.0])
    assert _compact_pcm(x).dtype == torch.int16 and torch.equal(_compact_pcm(x).float() / 32768, x)
    assert _compact_pcm(x * 0.3).dtype == torch.float32  # not on the 16-bit grid
    recs = [{"key": f"k{i}", "wav": make_wav(tmp_path / f"{i}.wav", 0.5 + 0.1 * i, seed=i),
             "txt": "hello world", "task": "<TRANSCRIBE>"} for i in range(4)]
    lst = write_jsonl(tmp_path / "data.list", recs)
    host, dev = _loader_pair(tiny_tok, lst, 0)
    for a, b in zip(host, dev):
        assert b.wavs.dtype == torch.int16
        f = b.featurize()
        assert torch.allclose(a.feats, f.feats, atol=1e-4) and torch.equal(a.feats == 0, f.feats == 0)


def test_model_loss_equal_with_device_features(tiny_tok, upstream_fake, tiny_model_cfg):
    from osum_echat.model.build import build_model

    cfg = tiny_model_cfg
    cfg.llm.vocab_size = len(tiny_tok)
    host, dev = _loader_pair(tiny_tok, str(upstream_fake / "raw/data.list"), 0, text_vocab_size=len(tiny_tok),
                             filter__max_seq_len=0)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for a, b in zip(host[:2], dev[:2]):
            la, lb = model(a)["loss"], model(b)["loss"]
            assert torch.isfinite(la) and abs(la.item() - lb.item()) < 1e-4 * max(1.0, abs(la.item()))


def test_mixed_batch_is_refused():
    from osum_echat.model.batch import Example, SpeechInSegment, TextSegment, collate

    seg_wav = SpeechInSegment(torch.zeros(1, 80).expand(10, 80), wav=torch.randn(1600))
    exs = [Example([TextSegment([1]), seg_wav], key="a"),
           Example([TextSegment([1]), SpeechInSegment(torch.randn(10, 80))], key="b")]
    with pytest.raises(ValueError, match="mixes"):
        collate(exs, 100)
    b = collate(exs[:1], 100)
    assert b.wavs.shape == (1, 1600) and b.featurize().feats.shape == (1, 10, 80)
