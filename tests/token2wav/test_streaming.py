"""Streaming: 25 Hz constants, gapless chunks, equality with one-shot synthesis where it must hold."""

from __future__ import annotations

import numpy as np
import torch

from osum_echat.token2wav.config import tiny_config
from osum_echat.token2wav.flow import frames_for
from osum_echat.token2wav.hift import HiFTGenerator
from osum_echat.token2wav.streaming import HiFTStreamer, NoiseTape, StreamConfig, crossfade, fade_weights


def test_crossfade_reconstructs_identical_overlap():
    w = fade_weights(17)
    assert torch.all(w > 0) and torch.all(w < 1) and torch.allclose(w + w.flip(0), torch.ones(17))
    sig = torch.randn(1, 80, 50)
    assert torch.allclose(crossfade(sig[:, :, 10:], sig[:, :, 10:27]), sig[:, :, 10:])


def test_noise_tape_is_read_order_independent():
    a = NoiseTape(3, torch.Generator().manual_seed(5), block=7)
    b = NoiseTape(3, torch.Generator().manual_seed(5), block=7)
    whole = a.take(0, 40)
    parts = torch.cat([b.take(0, 3), b.take(3, 19), b.take(19, 40)], dim=-1)
    assert torch.equal(whole, parts)


def test_default_constants_are_25hz():
    cfg = StreamConfig()
    assert frames_for(cfg.crossfade_tokens, 25) == 17  # 5 codes -> 17 frames (~0.2 s)
    assert frames_for(cfg.lookahead_tokens, 25) == 34  # 0.4 s, upstream's 34 frames were for 50 Hz
    assert cfg.hift_context_frames >= 14 and cfg.hift_lookahead_frames >= 14  # vocoder receptive field


def test_hift_chunked_equals_one_shot():
    torch.manual_seed(0)
    hift = HiFTGenerator(tiny_config().hift).eval()
    mel = torch.randn(1, 80, 200) - 5
    full = HiFTStreamer(hift, torch.Generator().manual_seed(3)).push(mel, True)
    st = HiFTStreamer(hift, torch.Generator().manual_seed(3))
    outs, i = [], 0
    for n in (30, 1, 57, 70, 42):
        outs.append(st.push(mel[:, :, i : i + n], False))
        i += n
    outs.append(st.push(None, True))
    assert sum(o.numel() for o in outs) == full.numel() == 200 * 256
    assert torch.allclose(torch.cat(outs), full, atol=1e-5)


def test_stream_single_chunk_equals_synthesize(tiny_t2w):
    codes = list(np.random.RandomState(1).randint(0, 4096, 60))
    ref, _ = tiny_t2w.synthesize(codes, seed=4)
    chunks = list(tiny_t2w.stream(iter(codes), seed=4, config=StreamConfig(first_hop_tokens=1000)))
    assert np.allclose(np.concatenate(chunks), ref, atol=1e-6)


def test_stream_chunks_gapless_and_close(tiny_t2w):
    codes = list(np.random.RandomState(2).randint(0, 4096, 140))
    ref, _ = tiny_t2w.synthesize(codes, seed=4)
    scfg = StreamConfig(first_hop_tokens=15, hop_tokens=30)
    chunks = list(tiny_t2w.stream(([c] for c in codes), seed=4, config=scfg))
    assert len(chunks) >= 4 and all(len(c) > 0 for c in chunks)
    out = np.concatenate(chunks)
    assert len(out) == len(ref) == frames_for(140, 25) * 256  # no gap, no overlap left in
    assert np.isfinite(out).all()
    # The flow is bidirectional, so chunks differ from one-shot audio; they stay of the same scale.
    assert 0.3 < np.std(out) / np.std(ref) < 3.0


def test_stream_empty_iterator(tiny_t2w):
    assert list(tiny_t2w.stream(iter([]))) == []
