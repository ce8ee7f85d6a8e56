"""S3 speech tokenizer (``speech_tokenizer_v1.onnx``, 25 Hz in the CosyVoice-300M-25Hz folder).

16 kHz audio -> Whisper 128-bin log-mel (n_fft 400, hop 160, Slaney mel, log10, 8 dB floor
below the max, ``(x + 4) / 4``) -> ONNX (inputs: feats ``(1, 128, T)`` float32 and
length ``(1,)`` int32) -> code ids. The tokenizer accepts at most 30 s, so longer audio is
split into <= 30 s pieces whose codes are concatenated.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from osum_echat.audio.features import HOP_LENGTH as HOP
from osum_echat.audio.features import log_mel_spectrogram

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_SECONDS = 30


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
        if len(piece) < HOP:  # not one 10 ms frame
            return []
        # the same Whisper log-mel as the model's input features, here with 128 bins: (n_mels, T)
        feats = log_mel_spectrogram(torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32)), self.n_mels).T
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
