"""The frozen-encoder output cache: same numbers as the encoder, fewer encoder rows, refusals."""

from __future__ import annotations

import pytest
import torch

from osum_echat.model.batch import Example, SpeechInSegment, TextSegment, collate
from osum_echat.model.build import build_model
from osum_echat.model.encoder_cache import EncoderCache
from osum_echat.model.trainable import set_trainable


def example(frames=100, key="a"):
    return Example([TextSegment([1, 2, 3]), SpeechInSegment(torch.randn(frames, 80)),
                    TextSegment([4, 5, 6], supervised=True)], key=key)


def _frozen_model(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    set_trainable(model, ["adapter", "llm"])
    return model


def _count_encoder_rows(model) -> list[int]:
    rows: list[int] = []
    model.encoder.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    return rows


def _padded(*lengths: int) -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.zeros(len(lengths), max(lengths), 80)
    for i, t in enumerate(lengths):
        feats[i, :t] = torch.randn(t, 80)
    return feats, torch.tensor(lengths)


def test_cached_frames_equal_the_encoder_and_only_new_rows_are_encoded(tiny_model_cfg):
    model = _frozen_model(tiny_model_cfg)
    feats, lens = _padded(301, 157, 90)
    ref, ref_lens = model.encoder(feats, lens)
    cache = model.enable_encoder_cache(16)
    rows = _count_encoder_rows(model)

    x, x_lens = cache.encode(model.encoder, feats, lens)
    assert x_lens.tolist() == ref_lens.tolist() == [151, 79, 45]
    for i, n in enumerate(x_lens.tolist()):
        assert torch.allclose(x[i, :n], ref[i, :n], atol=1e-5)
        assert not x[i, n:].any()  # zero past each row's end
    assert rows == [3] and cache.stats()["misses"] == 3 and len(cache) == 3

    # Row 1 again, padded differently and next to a new utterance: one row goes to the encoder.
    new = torch.randn(200, 80)
    alone, _ = model.encoder(new[None], torch.tensor([200]))
    del rows[:]
    feats2 = torch.zeros(2, 200, 80)
    feats2[0] = new
    feats2[1, :157] = feats[1, :157]
    y, y_lens = cache.encode(model.encoder, feats2, torch.tensor([200, 157]))
    assert rows == [1]
    assert torch.allclose(y[1, :79], ref[1, :79], atol=1e-5)
    assert torch.allclose(y[0, :100], alone[0], atol=1e-5)
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"], stats["hit_rate"]) == (1, 4, 4, 0.2)

    # A full hit runs no encoder at all.
    cache.encode(model.encoder, feats, lens)
    assert rows == [1]

    # The same new utterance twice in one batch: encoded once, stored once.
    twice = torch.randn(1, 120, 80).expand(2, 120, 80).contiguous()
    before = cache.bytes
    z, z_lens = cache.encode(model.encoder, twice, torch.tensor([120, 120]))
    assert rows == [1, 1] and len(cache) == 5 and torch.equal(z[0], z[1])
    assert cache.bytes - before == 60 * 64 * 4  # one entry of 60 frames x 64 floats


def test_model_loss_and_adapter_gradients_unchanged_with_the_cache(tiny_model_cfg):
    model = _frozen_model(tiny_model_cfg)
    batch = collate([example(key="a"), example(57, key="b")], 2048)

    def loss_and_grad():
        model.zero_grad()
        out = model(batch)
        out["loss"].backward()
        return out["loss"].item(), model.speech_llama_proj.weight.grad.clone()

    loss0, grad0 = loss_and_grad()
    model.enable_encoder_cache(16)
    rows = _count_encoder_rows(model)
    loss1, grad1 = loss_and_grad()   # fills the cache
    loss2, grad2 = loss_and_grad()   # served from it
    assert rows == [2]
    assert loss1 == pytest.approx(loss0, abs=1e-5) and loss2 == pytest.approx(loss0, abs=1e-5)
    assert torch.allclose(grad1, grad0, atol=1e-5) and torch.allclose(grad2, grad0, atol=1e-5)
    assert all(p.grad is None for p in model.encoder.parameters())


def test_least_recently_used_entries_leave_first():
    enc_rows: list[int] = []

    class FirstFour(torch.nn.Module):   # 4 floats per frame
        def forward(self, feats, lengths):
            enc_rows.append(feats.shape[0])
            return feats[:, :, :4].clone(), lengths.clone()

    encoder = FirstFour()

    frame_bytes = 4 * 4
    cache = EncoderCache(max_mb=250 * frame_bytes / 2**20)  # room for 250 frames
    a, b, c = (torch.full((1, 100, 80), float(v)) for v in (1, 2, 3))
    n = torch.tensor([100])
    for x in (a, b, a, c):   # c does not fit next to a and b: b (least recently used) goes
        cache.encode(encoder, x, n)
    assert cache.bytes == 200 * frame_bytes and len(cache) == 2
    cache.encode(encoder, a, n)
    assert enc_rows == [1, 1, 1]  # a was served from the cache twice
    cache.encode(encoder, b, n)
    assert enc_rows == [1, 1, 1, 1]  # b had been evicted
    too_big = torch.ones(1, 300, 80)
    cache.encode(encoder, too_big, torch.tensor([300]))
    assert cache.bytes <= cache.max_bytes and len(cache) == 2  # larger than the whole cache: not kept


def test_refuses_a_training_encoder_or_dropout(tiny_model_cfg):
    model = build_model(tiny_model_cfg)   # every part trains by default in tiny.yaml
    with pytest.raises(ValueError, match="frozen encoder"):
        model.enable_encoder_cache(16)
    set_trainable(model, ["adapter", "llm"])
    model.enable_encoder_cache(16)
    set_trainable(model, ["encoder", "adapter", "llm"])   # a later unfreeze must not read stale entries
    with pytest.raises(ValueError, match="encoder now trains"):
        model(collate([example()], 2048))

    tiny_model_cfg.encoder.dropout = 0.1
    model = build_model(tiny_model_cfg)
    set_trainable(model, ["adapter", "llm"])
    with pytest.raises(ValueError, match="dropout 0.1"):
        model.enable_encoder_cache(16)
    with pytest.raises(ValueError, match="> 0 MB"):
        EncoderCache(0)


def test_saved_entries_load_only_for_the_same_encoder_weights(tiny_model_cfg, tmp_path):
    model = _frozen_model(tiny_model_cfg)
    feats, lens = _padded(120, 80, 60)
    cache = model.enable_encoder_cache(16)
    ref, _ = cache.encode(model.encoder, feats, lens)
    assert cache.save(tmp_path / "c.pt", model.encoder) == 3 and not (tmp_path / "c.pt.tmp").exists()

    again = EncoderCache(16)
    assert again.load(tmp_path / "c.pt", model.encoder) == 3
    rows = _count_encoder_rows(model)
    x, _ = again.encode(model.encoder, feats, lens)
    assert rows == [] and torch.equal(x, ref) and again.stats()["hits"] == 3
    assert again.load(tmp_path / "c.pt", model.encoder) == 0  # already there

    small = EncoderCache(1e-3)  # ~1 kB: holds no entry of this size, least recently used out first
    assert small.load(tmp_path / "c.pt", model.encoder) == 0

    other = _frozen_model(tiny_model_cfg)
    with torch.no_grad():
        next(other.encoder.parameters()).add_(1e-3)  # other weights: the frames would be wrong
    assert EncoderCache(16).load(tmp_path / "c.pt", other.encoder) == -1
    torch.save({"something": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not an encoder cache file"):
        EncoderCache(16).load(tmp_path / "bad.pt", model.encoder)
