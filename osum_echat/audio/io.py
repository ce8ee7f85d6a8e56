"""Audio input: any format soundfile reads (WAV, FLAC, OGG, MP3) -> mono float32 at 16 kHz."""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """Audio that cannot be read or used (the data pipeline counts these as drops)."""


def _pcm16_wav(data: bytes) -> tuple[torch.Tensor, int] | None:
    """Fast path for in-memory PCM16 WAV (what shards hold): (mono (N,), sr), or None when the
    bytes are anything else (then soundfile reads them). Same values as soundfile (x / 32768)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if cid == b"fmt " and size >= 16:
            fmt = struct.unpack("<HHIIHH", data[body : body + 16])
        elif cid == b"data":
            if fmt is None or fmt[0] != 1 or fmt[5] != 16 or fmt[1] < 1:
                return None
            ch, sr = fmt[1], fmt[2]
            n = (min(len(data), body + size) - body) // (2 * ch)
            if n == 0:
                return None
            x = np.frombuffer(data, "<i2", count=n * ch, offset=body).reshape(n, ch).astype(np.float32)
            x /= 32768.0
            mono = x.mean(axis=1) if ch > 1 else x[:, 0]
            return torch.from_numpy(np.ascontiguousarray(mono)), sr
        pos = body + size + (size & 1)
    return None


def _describe(source: str | Path | bytes, name: str | None) -> str:
    if name:
        return name
    return "<audio bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def _why(err: Exception) -> str:
    """soundfile's message without its 'Error opening ...:' prefix (the caller names the file)."""
    text = str(err).strip()
    if text.startswith("Error opening") and ": " in text:
        text = text.rsplit(": ", 1)[-1]
    return text.rstrip(".") or type(err).__name__


def check_audio_path(path: str | Path) -> None:
    """Raise :class:`AudioError` with a clear message when ``path`` is not an existing file."""
    p = Path(path)
    if not p.exists():
        where = "" if p.is_absolute() else f" (relative to the working directory {Path.cwd()})"
        raise AudioError(f"audio file not found: {p}{where}")
    if not p.is_file():
        raise AudioError(f"audio path is not a file: {p}")


def load_audio(
    source: str | Path | bytes, start: float | None = None, end: float | None = None,
    name: str | None = None,
) -> tuple[torch.Tensor, int]:
    """Read a file path or encoded bytes -> (mono waveform (N,) float32, sample_rate).

    ``start``/``end`` (seconds) read only that segment. Multichannel audio is averaged to
    mono. ``name`` names bytes in messages (e.g. "member k.wav of a.tar"). Raises
    :class:`AudioError` naming the file and the reason for missing, unreadable or empty input.
    """
    is_bytes = isinstance(source, (bytes, bytearray))
    if is_bytes and start is None:
        fast = _pcm16_wav(bytes(source))
        if fast is not None:
            return fast
    label = _describe(source, name)
    if not is_bytes:
        check_audio_path(source)
    handle = io.BytesIO(source) if is_bytes else str(source)
    try:
        with sf.SoundFile(handle) as f:
            sr = f.samplerate
            if start is not None:
                if end is not None and end <= start:
                    raise AudioError(f"{label}: end {end} <= start {start}")
                f.seek(int(round(start * sr)))
                frames = -1 if end is None else int(round((end - start) * sr))
            else:
                frames = -1
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"{label}: not readable as audio ({_why(err)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{label}: no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return torch.from_numpy(np.ascontiguousarray(mono)), sr


@functools.lru_cache(maxsize=32)
def _resampler(orig_sr: int, new_sr: int, device: str) -> torch.nn.Module:
    """``torchaudio.transforms.Resample`` for one rate pair, built once: its windowed-sinc
    kernel is computed in float64 and then stored in float32 (the functional form computes it
    in the waveform's float32, which moves log-mel values by up to ~1e-3 at 22.05 kHz)."""
    import torchaudio.transforms as AT

    return AT.Resample(int(orig_sr), int(new_sr)).to(device)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Band-limited resampling of ``(..., N)`` float audio -> ``(..., ceil(N * new / orig))``
    float32; identity when the rates match. The one resampler of the project (inference, data
    pipeline, speed perturbation, token2wav prompts), equal to ``torchaudio.transforms.Resample``
    with its default Hann-windowed sinc (kernel cached per rate pair and device)."""
    if orig_sr == new_sr:
        return wav
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioError(f"cannot resample from {orig_sr} Hz to {new_sr} Hz")
    with torch.no_grad():
        return _resampler(int(orig_sr), int(new_sr), str(wav.device))(wav.float())


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
