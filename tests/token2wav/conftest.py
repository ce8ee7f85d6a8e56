"""Shared fixtures for the token2wav tests: a tiny fake CosyVoice folder and a prompt wav."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def fake_dir(tmp_path_factory):
    from osum_echat.token2wav.fake import make_fake_cosyvoice_dir

    return make_fake_cosyvoice_dir(tmp_path_factory.mktemp("cosyvoice") / "CosyVoice-300M-25Hz")


@pytest.fixture(scope="session")
def prompt_wav(tmp_path_factory):
    sr = 24000
    t = np.arange(int(1.5 * sr)) / sr
    rng = np.random.RandomState(0)
    x = (0.3 * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.randn(t.size)).astype(np.float32)
    path = tmp_path_factory.mktemp("prompt") / "prompt.wav"
    sf.write(path, x, sr)
    return path


@pytest.fixture(scope="session")
def tiny_t2w():
    from osum_echat.token2wav.config import tiny_config
    from osum_echat.token2wav.model import Token2Wav

    return Token2Wav.from_config(tiny_config(), device="cpu")
