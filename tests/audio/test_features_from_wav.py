"""``features_from_wav``: the one public wav -> model-features helper (paths, bytes, arrays)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osum_echat.audio.features import features_from_wav, log_mel_spectrogram
from osum_echat.audio.io import AudioError, load_16k, resample, save_wav


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(16000, generator=g)).float()


def test_every_input_form_gives_the_same_features(clip, tmp_path):
    want = log_mel_spectrogram(clip)
    assert want.shape == (100, 80)
    path = tmp_path / "a.wav"
    save_wav(path, clip, 16000)
    from_file = features_from_wav(path)
    assert from_file.dtype == torch.float32 and from_file.shape == want.shape
    assert torch.equal(from_file, log_mel_spectrogram(load_16k(path)))
    assert (from_file - want).abs().mean() < 1e-3  # the file is 16-bit PCM
    assert torch.equal(features_from_wav(str(path)), from_file)
    assert torch.equal(features_from_wav(path.read_bytes()), from_file)
    assert torch.equal(features_from_wav(clip), want)
    assert torch.equal(features_from_wav(clip.numpy()), want)
    assert torch.equal(features_from_wav(clip[None]), want)
    assert torch.equal(features_from_wav(clip[:, None].double()), want)
    assert features_from_wav(clip, n_mels=128).shape == (100, 128)
    seg = features_from_wav(path, start=0.25, end=0.75)
    assert seg.shape == (50, 80)


def test_other_rates_are_resampled(clip, tmp_path):
    x44 = resample(clip, 16000, 44100)
    want = log_mel_spectrogram(resample(x44, 44100, 16000))
    assert torch.equal(features_from_wav(x44, sample_rate=44100), want)
    save_wav(tmp_path / "b.wav", x44, 44100)
    assert (features_from_wav(tmp_path / "b.wav") - want).abs().mean() < 1e-3


def test_bad_inputs_say_what_is_wrong(clip, tmp_path):
    with pytest.raises(ValueError, match="mono"):
        features_from_wav(torch.stack([clip, clip]))
    with pytest.raises(ValueError, match="shorter than one 10 ms frame"):
        features_from_wav(np.zeros(100, dtype=np.float32))
    with pytest.raises(AudioError, match="no_such.wav"):
        features_from_wav(tmp_path / "no_such.wav")
    with pytest.raises(ValueError, match="start/end"):
        features_from_wav(clip, start=0.1)


def test_generation_uses_it(tiny_tokenizer, clip):
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "generate"))
    from gen_helpers import make_bot

    from osum_echat.generate import echat

    assert echat.features_of is features_from_wav  # the old name still works
    bot = make_bot(tiny_tokenizer)
    s = bot.sample("asr", clip)
    assert torch.equal(s.feats, features_from_wav(clip))
    with pytest.raises(ValueError, match="needs speech input"):
        bot.sample("asr", None)
