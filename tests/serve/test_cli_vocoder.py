"""The serve CLI's pluggable vocoder loading, and the mini recipe codec's streaming interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def test_load_factory_and_mini_vocoder_stream(tmp_path):
    pytest.importorskip("torchaudio")
    from osum_echat.bin.serve import load_factory

    with pytest.raises(SystemExit, match="FILE.py:FACTORY"):
        load_factory("no_such_file.py:build")
    with pytest.raises(SystemExit, match="defines no 'nope'"):
        load_factory(f"{REPO}/recipes/mini/local/serve_vocoder.py:nope")
    build = load_factory(f"{REPO}/recipes/mini/local/serve_vocoder.py:build")
    codec = tmp_path / "codec.pt"
    torch.manual_seed(0)
    torch.save({"centroids": torch.randn(16, 320) - 4.0, "rate_hz": 25}, codec)
    voc = build(codec=str(codec), chunk="6", first_chunk="3", n_iter="4")
    assert voc.sample_rate == 16000
    codes = [int(c) for c in np.random.default_rng(0).integers(0, 16, 20)]
    chunks = list(voc.stream(iter([[c] for c in codes])))
    # first chunk after 3 codes, then every 6, the rest at the end: 3 + 6 + 6 + 5 codes
    assert [len(c) for c in chunks] == [3 * 640, 6 * 640, 6 * 640, 5 * 640]
    assert all(c.dtype == np.float32 and np.isfinite(c).all() for c in chunks)
