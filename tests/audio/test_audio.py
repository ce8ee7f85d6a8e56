import random

import numpy as np
import pytest
import soundfile as sf
import torch

from osum_echat.audio.augment import spec_aug, spec_sub
from osum_echat.audio.features import log_mel_batch, log_mel_spectrogram, num_frames
from osum_echat.audio.io import AudioError, load_16k, load_audio, resample, save_wav


def test_log_mel_equals_openai_whisper():
    whisper = pytest.importorskip("whisper")
    wav = torch.from_numpy(np.random.RandomState(0).randn(16000 * 2 + 123).astype(np.float32) * 0.1)
    ours = log_mel_spectrogram(wav)
    ref = whisper.log_mel_spectrogram(wav).T
    assert ours.shape == ref.shape == (num_frames(wav.numel()), 80)
    assert torch.allclose(ours, ref, atol=1e-4)


def test_log_mel_batch_equals_per_utterance():
    """One STFT over zero-padded rows = each row alone: own reflected end, own (max - 8) floor
    (a loud row next to a quiet one), zero rows/frames past each length; short rows rejected."""
    g = torch.Generator().manual_seed(0)
    lens = [16000 * 3 + 77, 401, 16000 + 159, 2345]
    scale = [1.0, 0.01, 0.1, 1e-4]
    wavs = torch.zeros(len(lens), max(lens) + 500)  # extra padding: T follows the lengths
    for i, (n, a) in enumerate(zip(lens, scale)):
        wavs[i, :n] = a * torch.randn(n, generator=g)
        wavs[i, n:] = 7.0  # garbage past the length must not leak in
    feats, frames = log_mel_batch(wavs, torch.tensor(lens))
    assert feats.shape == (len(lens), max(lens) // 160, 80)
    for i, n in enumerate(lens):
        ref = log_mel_spectrogram(wavs[i, :n])
        assert int(frames[i]) == ref.shape[0] == num_frames(n)
        assert torch.allclose(feats[i, : ref.shape[0]], ref, atol=1e-4)
        assert not feats[i, ref.shape[0]:].any()
    with pytest.raises(ValueError, match="too short"):
        log_mel_batch(torch.zeros(1, 300), torch.tensor([200]))


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_formats_downmix_and_resample(tmp_path, fmt):
    sr = 24000
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1).astype(np.float32) * 0.5
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, stereo, sr, format=fmt)
    wav, got_sr = load_audio(path)
    assert got_sr == sr and wav.dim() == 1 and wav.dtype == torch.float32
    assert abs(float(wav.abs().max()) - 0.25) < 0.02  # mean of the two channels
    w16 = load_16k(path)
    assert abs(w16.numel() - 16000) <= 1
    seg, _ = load_audio(path, start=0.25, end=0.75)
    assert seg.numel() == sr // 2


def test_bad_audio_raises_audio_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match=r"bad.wav: not readable as audio \(Format not recognised\)"):
        load_audio(bad)
    with pytest.raises(AudioError, match="audio file not found: .*missing.wav$"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match=r"^member k.wav of a.tar: not readable as audio"):
        load_audio(b"RIFF but not audio", name="member k.wav of a.tar")
    with pytest.raises(ValueError, match="shorter than one"):
        log_mel_spectrogram(torch.zeros(100))


def test_upstream_fake_wav_gives_features(upstream_fake):
    wav = load_16k(upstream_fake / "raw" / "wav" / "random.wav")
    feats = log_mel_spectrogram(wav)
    assert feats.shape[1] == 80 and feats.shape[0] == wav.numel() // 160 > 1000
    assert torch.isfinite(feats).all()


def test_save_and_resample_round_trip(tmp_path):
    x = torch.sin(torch.arange(8000) / 8000 * 2 * np.pi * 200) * 0.3
    save_wav(tmp_path / "a.wav", x, 8000)
    y, sr = load_audio(tmp_path / "a.wav")
    assert sr == 8000 and torch.allclose(x, y, atol=1e-4)
    assert resample(y, 8000, 16000).numel() == 16000


def test_spec_aug_and_sub_are_seeded_and_shape_preserving():
    feats = torch.randn(300, 80)
    a = spec_aug(feats, random.Random(1))
    b = spec_aug(feats, random.Random(1))
    assert torch.equal(a, b) and a.shape == feats.shape
    assert (a == 0).any() and not torch.equal(a, feats)
    assert torch.equal(feats, feats.clone())  # input untouched
    s = spec_sub(feats, random.Random(2))
    assert s.shape == feats.shape and not torch.equal(s, feats)


def test_pcm16_fast_path_equals_soundfile(tmp_path):
    import io

    x = (np.random.RandomState(1).randn(3000, 2) * 0.2).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 22050, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    fast, sr = load_audio(data)
    ref = torch.from_numpy(sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0].mean(1))
    assert sr == 22050 and torch.equal(fast, ref)
    seg, _ = load_audio(data, start=0.01, end=0.02)  # segments still go through soundfile
    assert seg.numel() == 220
