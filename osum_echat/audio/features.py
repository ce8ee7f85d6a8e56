"""Whisper-style log-mel features, numerically equal to upstream OSUM-EChat (and to
``whisper.log_mel_spectrogram``): 25 ms Hann window, 10 ms hop, 80 Slaney mel bins, the last
STFT frame dropped, log10 with a floor at (max - 8), then (x + 4) / 4."""

from __future__ import annotations

import functools

import torch

N_FFT = 400
HOP_LENGTH = 160
SAMPLE_RATE = 16000


@functools.lru_cache(maxsize=8)
def _mel_filters(n_mels: int, device_str: str) -> torch.Tensor:
    """(n_mels, n_fft//2+1) Slaney-scale, Slaney-normalised filterbank (librosa's defaults)."""
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(
        n_freqs=N_FFT // 2 + 1, f_min=0.0, f_max=SAMPLE_RATE / 2, n_mels=n_mels,
        sample_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney",
    )
    return fb.T.contiguous().to(device_str)


@functools.lru_cache(maxsize=8)
def _mel_projection(n_mels: int, device_str: str) -> torch.Tensor:
    """The filterbank as used for the projection: on the CPU a sparse CSR matrix (the Slaney
    triangles cover at most 14 of the 201 bins each: 391 of 16,080 entries are non-zero, and the
    product is ~6x cheaper than the dense one; equal to it within float rounding, ~1e-7
    relative); dense elsewhere (accelerators gain nothing from it)."""
    import warnings

    fb = _mel_filters(n_mels, device_str)
    if torch.device(device_str).type != "cpu":
        return fb
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta": the product is plain
        return fb.to_sparse_csr()


@functools.lru_cache(maxsize=8)
def _window(device_str: str) -> torch.Tensor:
    return torch.hann_window(N_FFT, device=device_str)


def num_frames(num_samples: int) -> int:
    """Feature frames for a 16 kHz waveform of ``num_samples`` samples (= N // 160)."""
    return num_samples // HOP_LENGTH


def log_mel_spectrogram(wav: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """Mono 16 kHz waveform (N,) -> features (N // 160, n_mels), float32.

    Raises ValueError for clips too short to give one frame.
    """
    if wav.dim() != 1:
        raise ValueError(f"expected a mono waveform (N,), got shape {tuple(wav.shape)}")
    if wav.numel() < HOP_LENGTH:
        raise ValueError(f"waveform of {wav.numel()} samples is shorter than one 10 ms frame")
    wav = wav.float()
    dev = str(wav.device)
    spec = torch.stft(wav, N_FFT, HOP_LENGTH, window=_window(dev), return_complex=True)
    # |X|^2 as re^2 + im^2 on the whole (frequency-contiguous) spectrum: several times
    # cheaper than complex abs() ** 2 or a reduction over (re, im) pairs
    ri = torch.view_as_real(spec)
    power = ri[..., 0].square() + ri[..., 1].square()
    # the last frame is dropped after the projection (a contiguous operand is ~3x faster for
    # the sparse product); the tail runs in place on the (n_mels, T) projection
    log_spec = (_mel_projection(n_mels, dev) @ power)[:, :-1].clamp_(min=1e-10).log10_()
    log_spec = log_spec.clamp_(min=log_spec.max() - 8.0)
    return log_spec.add_(4.0).div_(4.0).T.contiguous()


def log_mel_batch(wavs: torch.Tensor, lengths: torch.Tensor, n_mels: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a batch in one STFT: zero-padded waveforms (B, N) with valid ``lengths``
    (B,) samples -> (feats (B, T, n_mels) float32 zero-padded, frames (B,) = lengths // 160),
    T = max frames. Row b equals ``log_mel_spectrogram(wavs[b, :lengths[b]])`` (within float
    rounding): each row is reflect-padded at its own end, and the (max - 8) floor is taken
    per row. Works on any device (one call for the whole batch on an accelerator).
    Raises ValueError for rows of 200 samples or less (the reflection needs more)."""
    if wavs.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != wavs.shape[0]:
        raise ValueError(f"expected wavs (B, N) and lengths (B,), got {tuple(wavs.shape)} and {tuple(lengths.shape)}")
    half = N_FFT // 2
    if int(lengths.min()) <= half:
        raise ValueError(f"a waveform of {int(lengths.min())} samples is too short (> {half} needed)")
    dev, wavs = wavs.device, wavs.float()
    lengths = lengths.to(dev)
    b, n = wavs.shape
    frames = lengths // HOP_LENGTH
    t = int(frames.max())
    # the samples each row's frames read: [reflected head | wav | reflected tail | zeros]
    width = max(n, (t - 1) * HOP_LENGTH + N_FFT - 2 * half) + 2 * half
    padded = wavs.new_zeros(b, width)
    padded[:, half:half + n] = wavs
    padded[:, :half] = wavs[:, 1:half + 1].flip(-1)
    k = torch.arange(half, device=dev)
    tail_src = (lengths[:, None] - 2 - k).clamp(min=0)  # x[n-2], x[n-3], ... (reflect mode)
    padded.scatter_(1, lengths[:, None] + half + k, wavs.gather(1, tail_src))
    padded[torch.arange(width, device=dev)[None] >= (lengths + 2 * half)[:, None]] = 0.0
    spec = torch.stft(padded[:, :(t - 1) * HOP_LENGTH + N_FFT], N_FFT, HOP_LENGTH, window=_window(str(dev)),
                      center=False, return_complex=True)  # (B, F, t)
    ri = torch.view_as_real(spec)
    power = ri[..., 0].square() + ri[..., 1].square()
    log_spec = torch.clamp(_mel_filters(n_mels, str(dev)) @ power, min=1e-10).log10()  # (B, M, t)
    valid = torch.arange(t, device=dev)[None] < frames[:, None]  # (B, t)
    peak = log_spec.masked_fill(~valid[:, None], float("-inf")).amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    out = ((log_spec + 4.0) / 4.0).transpose(1, 2) * valid[..., None]
    return out.contiguous(), frames


def features_from_wav(wav, n_mels: int = 80, sample_rate: int = SAMPLE_RATE,
                      start: float | None = None, end: float | None = None) -> torch.Tensor:
    """Any speech input -> log-mel features (T, n_mels) float32 on the CPU, as the model takes them.

    ``wav`` is a file path (any format ``audio/io.py`` reads), encoded bytes, or a mono
    waveform (tensor or numpy array of shape (N,), (1, N) or (N, 1)) at ``sample_rate`` Hz
    (default 16 kHz). Files and waveforms at another rate are resampled to 16 kHz; ``start``
    / ``end`` (seconds) read a segment of a file. Raises ``AudioError`` (a ``ValueError``) for
    unreadable audio and ``ValueError`` for multichannel waveforms or clips under 10 ms.
    """
    from pathlib import Path

    from osum_echat.audio.io import load_audio, resample

    if isinstance(wav, (str, Path, bytes, bytearray)):
        wav, sample_rate = load_audio(wav, start, end)
    elif start is not None or end is not None:
        raise ValueError("start/end apply to files; slice a waveform yourself")
    x = wav if isinstance(wav, torch.Tensor) else torch.as_tensor(wav)
    if x.dim() == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.dim() != 1:
        raise ValueError(f"expected a mono waveform (N,), got shape {tuple(x.shape)}; average the channels first")
    x = resample(x.detach().float().cpu(), int(sample_rate), SAMPLE_RATE)
    return log_mel_spectrogram(x, n_mels)
