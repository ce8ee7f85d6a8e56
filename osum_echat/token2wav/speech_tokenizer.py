"""S3 speech tokenizer (``speech_tokenizer_v1.onnx``, 25 Hz in the CosyVoice-300M-25Hz folder).

16 kHz audio -> Whisper 128-bin log-mel (n_fft 400, hop 160, Slaney mel, log10, 8 dB floor
below the max, ``(x + 4) / 4``) -> ONNX (inputs: feats ``(1, 128, T)`` float32 and
length ``(1,)`` int32) -> code ids. The tokenizer accepts at most 30 s, so longer audio is
split into <= 30 s pieces whose codes are concatenated.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_SECONDS = 30
N_FFT, HOP = 400, 160


@lru_cache(maxsize=4)
def whisper_mel_filters(n_mels: int = 128) -> torch.Tensor:
    """``(n_mels, 201)`` Slaney mel filters: openai-whisper's ``mel_filters.npz`` when the package is
    installed (located without importing it), otherwise the same filters built by torchaudio."""
    spec = importlib.util.find_spec("whisper")
    if spec is not None and spec.origin:
        npz = Path(spec.origin).parent / "assets" / "mel_filters.npz"
        if npz.exists():
            with np.load(npz) as data:
                key = f"mel_{n_mels}"
                if key in data:
                    return torch.from_numpy(data[key]).float()
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(
        N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
    )
    return fb.T.contiguous()


def whisper_log_mel(audio: torch.Tensor, n_mels: int = 128) -> torch.Tensor:
    """audio ``(L,)`` float at 16 kHz -> ``(n_mels, L // 160)`` Whisper log-mel."""
    audio = audio.float()
    window = torch.hann_window(N_FFT, device=audio.device)
    stft = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = whisper_mel_filters(n_mels).to(audio.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def split_long(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, max_seconds: int = MAX_SECONDS) -> list[np.ndarray]:
    """Split into consecutive pieces of at most ``max_seconds`` (all but the last exactly that long)."""
    step = sample_rate * max_seconds
    if len(audio) <= step:
        return [audio]
    return [audio[i : i + step] for i in range(0, len(audio), step)]


def onnx_session(path: str | Path, providers: Sequence[str] | None = None, threads: int = 1):
    """An ONNX Runtime session; providers default to the CPU one (pass others explicitly)."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), sess_options=opts, providers=list(providers or ["CPUExecutionProvider"]))


class SpeechTokenizer:
    """ONNX S3 tokenizer: ``tokenize(audio16k) -> list[int]`` (25 codes per second for the 25 Hz model)."""

    def __init__(self, onnx_path: str | Path, providers: Sequence[str] | None = None, threads: int = 1) -> None:
        self.path = Path(onnx_path)
        self.session = onnx_session(self.path, providers, threads)
        inputs = self.session.get_inputs()
        if len(inputs) < 2:
            raise ValueError(f"{self.path}: expected inputs (feats, feats_length), found {[i.name for i in inputs]}")
        self.feat_name, self.len_name = inputs[0].name, inputs[1].name
        shape = inputs[0].shape
        self.n_mels = shape[1] if len(shape) == 3 and isinstance(shape[1], int) else 128

    def _run(self, piece: np.ndarray) -> list[int]:
        feats = whisper_log_mel(torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32)), self.n_mels)
        if feats.size(1) == 0:
            return []
        out = self.session.run(
            None,
            {self.feat_name: feats.unsqueeze(0).numpy(), self.len_name: np.array([feats.size(1)], dtype=np.int32)},
        )[0]
        return [int(v) for v in np.asarray(out).reshape(-1)]

    def tokenize(self, audio: np.ndarray | torch.Tensor) -> list[int]:
        """audio ``(L,)`` float at 16 kHz -> codes; > 30 s is split into 30 s pieces and concatenated."""
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        codes: list[int] = []
        for piece in split_long(audio):
            codes.extend(self._run(piece))
        return codes
