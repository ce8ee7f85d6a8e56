"""The one resampler equals upstream's (torchaudio.transforms.Resample, float64-built kernel)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.transforms as AT

from osum_echat.audio.features import log_mel_spectrogram
from osum_echat.audio.io import load_16k, resample

RATES = [8000, 22050, 24000, 44100, 48000]


def _clip(sr: int, seconds: float = 1.93) -> torch.Tensor:
    """Speech-like test clip: a harmonic glide with a near-silent stretch and nothing above
    ~3 kHz, so the high mel bins hold only resampling error: there a float32-built kernel
    (torchaudio.functional.resample) is off by ~2e-4 at 22.05 kHz, the float64-built one by <6e-5."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = 120 + 80 * t
    x = sum(0.3 / k * np.sin(2 * np.pi * k * np.cumsum(f0) / sr) for k in range(1, 12))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x[int(0.6 * sr): int(1.0 * sr)] *= 1e-4
    return torch.from_numpy((0.5 * x).astype(np.float32))


def _reference_16k(x: torch.Tensor, sr: int) -> torch.Tensor:
    """Float64 kernel applied in float64 (the exact sinc resampler, rounded once at the end)."""
    return AT.Resample(sr, 16000, dtype=torch.float64)(x.double()).float()


@pytest.mark.parametrize("sr", RATES)
def test_log_mel_matches_float64_reference(sr):
    x = _clip(sr)
    ours = resample(x, sr, 16000)
    ref = _reference_16k(x, sr)
    assert ours.shape == ref.shape and ours.dtype == torch.float32
    diff = (log_mel_spectrogram(ours) - log_mel_spectrogram(ref)).abs().max().item()
    assert diff <= 1e-4, (sr, diff)


@pytest.mark.parametrize("sr", RATES + [16000])
def test_waveform_equals_torchaudio_transform(sr):
    x = _clip(sr, 0.77)
    ours = resample(x, sr, 16000)
    up = x if sr == 16000 else AT.Resample(sr, 16000)(x)
    assert torch.equal(ours, up)
    assert ours.numel() == -(-x.numel() * 16000 // sr)


def test_batched_and_other_targets():
    x = torch.stack([_clip(24000, 0.5), _clip(24000, 0.5) * 0.5])
    out = resample(x, 24000, 22050)
    assert out.shape == (2, -(-x.shape[1] * 22050 // 24000))
    assert torch.equal(out[1], resample(x[1], 24000, 22050))
    assert torch.equal(out, AT.Resample(24000, 22050)(x))


def test_file_path_uses_the_same_resampler(tmp_path):
    """load_16k (inference) and the token2wav prompt loader go through the same resampler."""
    from osum_echat.token2wav.frontend import load_audio as prompt_audio

    x = _clip(44100, 0.6)
    path = tmp_path / "a.wav"
    sf.write(path, x.numpy(), 44100, subtype="FLOAT")
    assert torch.equal(load_16k(path), AT.Resample(44100, 16000)(x))
    assert torch.equal(prompt_audio(path, 22050), AT.Resample(44100, 22050)(x))
