"""Audio input: any format soundfile reads (WAV, FLAC, OGG, MP3) -> mono float32 at 16 kHz."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """Audio that cannot be read or used (the data pipeline counts these as drops)."""


def load_audio(
    source: str | Path | bytes, start: float | None = None, end: float | None = None
) -> tuple[torch.Tensor, int]:
    """Read a file path or encoded bytes -> (mono waveform (N,) float32, sample_rate).

    ``start``/``end`` (seconds) read only that segment. Multichannel audio is averaged to
    mono. Raises :class:`AudioError` with the reason for unreadable or empty input.
    """
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        with sf.SoundFile(handle) as f:
            sr = f.samplerate
            if start is not None:
                if end is not None and end <= start:
                    raise AudioError(f"{name}: end {end} <= start {start}")
                f.seek(int(round(start * sr)))
                frames = -1 if end is None else int(round((end - start) * sr))
            else:
                frames = -1
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"{name}: unreadable audio ({err})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return torch.from_numpy(np.ascontiguousarray(mono)), sr


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Band-limited resampling (torchaudio's sinc interpolation); identity when rates match."""
    if orig_sr == new_sr:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_sr, new_sr)


def load_16k(source: str | Path | bytes, start: float | None = None, end: float | None = None) -> torch.Tensor:
    """Mono float32 waveform (N,) at 16 kHz."""
    wav, sr = load_audio(source, start, end)
    return resample(wav, sr, SAMPLE_RATE)


def save_wav(path: str | Path, wav: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write 16-bit PCM WAV (float input in [-1, 1] is clipped)."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    wav = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sample_rate, subtype="PCM_16")
