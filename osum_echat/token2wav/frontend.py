"""Prompt-voice frontend: a prompt wav -> :class:`Voice` (prompt codes, prompt mel, x-vector).

- prompt mel at 22.05 kHz, Matcha style: reflect pad (n_fft - hop) / 2, STFT without centring,
  magnitude ``sqrt(re^2 + im^2 + 1e-9)``, Slaney mel (fmin 0, fmax 8000), ``ln(clamp(., 1e-5))``;
- speaker embedding: 16 kHz Kaldi fbank (80 bins, dither 0), mean-normalised, CAM++ ONNX
  (``campplus.onnx``) -> 192-d;
- prompt codes: the S3 tokenizer ONNX (:mod:`speech_tokenizer`).

A voice is computed once and cached in memory and, with ``cache_dir``, on disk as ``.pt``
(keyed by the wav's path, size and modification time).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from osum_echat.audio.io import resample
from osum_echat.token2wav.config import MelConfig
from osum_echat.token2wav.speech_tokenizer import MAX_SECONDS, SpeechTokenizer, onnx_session

logger = logging.getLogger(__name__)


@dataclass
class Voice:
    """Prompt conditioning for one voice.

    tokens ``(N1,)`` int64 prompt codes; mel ``(T1, 80)`` float32 prompt mel; embedding
    ``(spk_dim,)`` float32 x-vector (all zeros = no speaker).
    """

    tokens: torch.Tensor
    mel: torch.Tensor
    embedding: torch.Tensor
    name: str = ""

    @classmethod
    def empty(cls, spk_dim: int = 192, n_mels: int = 80) -> "Voice":
        """No prompt: zero speaker embedding, no prompt codes or mel."""
        return cls(torch.zeros(0, dtype=torch.long), torch.zeros(0, n_mels), torch.zeros(spk_dim), "<none>")

    def save(self, path: str | Path) -> None:
        torch.save({"tokens": self.tokens, "mel": self.mel, "embedding": self.embedding, "name": self.name}, path)

    @classmethod
    def load(cls, path: str | Path) -> "Voice":
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(d["tokens"].long(), d["mel"].float(), d["embedding"].float(), str(d.get("name", "")))


VoiceLike = Union[str, Path, Voice, None]


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read a wav (any rate, any channels) -> mono float32 ``(L,)`` at ``sample_rate``."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = torch.from_numpy(data.mean(axis=1))
    return resample(audio, sr, sample_rate)


@lru_cache(maxsize=8)
def _mel_basis(n_fft: int, n_mels: int, sr: int, fmin: float, fmax: float) -> torch.Tensor:
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, fmin, fmax, n_mels, sr, norm="slaney", mel_scale="slaney")
    return fb.T.contiguous()


def prompt_mel(audio: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """audio ``(L,)`` at ``cfg.sampling_rate`` -> ``(T, num_mels)`` natural-log mel, T = L // hop."""
    pad = (cfg.n_fft - cfg.hop_size) // 2
    if audio.numel() <= pad:
        return torch.zeros(0, cfg.num_mels)
    y = F.pad(audio.float().view(1, 1, -1), (pad, pad), mode="reflect").view(-1)
    spec = torch.stft(
        y, cfg.n_fft, cfg.hop_size, cfg.win_size, window=torch.hann_window(cfg.win_size), center=False, return_complex=True
    )
    mag = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    mel = _mel_basis(cfg.n_fft, cfg.num_mels, cfg.sampling_rate, cfg.fmin, cfg.fmax) @ mag
    return torch.log(torch.clamp(mel, min=1e-5)).T.contiguous()


class SpeakerEncoder:
    """CAM++ ONNX: 16 kHz audio -> x-vector."""

    def __init__(self, onnx_path: str | Path, providers: Sequence[str] | None = None) -> None:
        self.session = onnx_session(onnx_path, providers)
        self.input_name = self.session.get_inputs()[0].name

    @staticmethod
    def features(audio16k: torch.Tensor) -> torch.Tensor:
        """``(L,)`` -> ``(T, 80)`` Kaldi fbank with the utterance mean removed."""
        import torchaudio.compliance.kaldi as kaldi

        feat = kaldi.fbank(audio16k.float().view(1, -1), num_mel_bins=80, dither=0.0, sample_frequency=16000)
        return feat - feat.mean(dim=0, keepdim=True)

    def embed(self, audio16k: torch.Tensor) -> torch.Tensor:
        feat = self.features(audio16k).unsqueeze(0).numpy()
        out = self.session.run(None, {self.input_name: feat})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32).reshape(-1))


class PromptFrontend:
    """Builds and caches :class:`Voice` objects from prompt wavs."""

    def __init__(
        self,
        mel_cfg: MelConfig,
        campplus: str | Path | None = None,
        tokenizer: str | Path | None = None,
        cache_dir: str | Path | None = None,
        providers: Sequence[str] | None = None,
        spk_dim: int = 192,
    ) -> None:
        self.mel_cfg = mel_cfg
        self.spk_dim = spk_dim
        self.speaker = SpeakerEncoder(campplus, providers) if campplus and Path(campplus).exists() else None
        self.tokenizer = SpeechTokenizer(tokenizer, providers) if tokenizer and Path(tokenizer).exists() else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memory: dict[str, Voice] = {}
        if self.speaker is None and campplus:
            logger.warning("%s not found: prompt voices get a zero speaker embedding", campplus)
        if self.tokenizer is None and tokenizer:
            logger.warning("%s not found: prompt voices carry no prompt codes/mel", tokenizer)

    @staticmethod
    def _key(path: Path) -> str:
        st = path.stat()
        return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]

    def voice(self, source: VoiceLike) -> Voice:
        """``None``/``""`` -> empty voice; a :class:`Voice` as is; a wav path -> cached computation."""
        if source is None or (isinstance(source, str) and source == ""):
            return Voice.empty(self.spk_dim, self.mel_cfg.num_mels)
        if isinstance(source, Voice):
            return source
        path = Path(source)
        if path.suffix == ".pt":
            return Voice.load(path)
        key = self._key(path)
        if key in self._memory:
            return self._memory[key]
        disk = self.cache_dir / f"voice_{key}.pt" if self.cache_dir else None
        if disk is not None and disk.exists():
            voice = Voice.load(disk)
        else:
            voice = self.compute(path)
            if disk is not None:
                disk.parent.mkdir(parents=True, exist_ok=True)
                voice.save(disk)
        self._memory[key] = voice
        return voice

    def compute(self, path: str | Path) -> Voice:
        """Run the three extractors on one prompt wav (at most 30 s are used)."""
        sr = self.mel_cfg.sampling_rate
        audio = load_audio(path, sr)
        if audio.numel() > MAX_SECONDS * sr:
            logger.warning("prompt %s is longer than %d s; using the first %d s", path, MAX_SECONDS, MAX_SECONDS)
            audio = audio[: MAX_SECONDS * sr]
        audio16k = resample(audio, sr, 16000)
        emb = self.speaker.embed(audio16k) if self.speaker else torch.zeros(self.spk_dim)
        if emb.numel() != self.spk_dim:
            raise ValueError(f"campplus.onnx returned {emb.numel()} dims, flow expects {self.spk_dim}")
        if self.tokenizer is not None:
            tokens = torch.tensor(self.tokenizer.tokenize(audio16k), dtype=torch.long)
            mel = prompt_mel(audio, self.mel_cfg)
        else:  # prompt mel without prompt codes would misalign the flow conditioning
            tokens, mel = torch.zeros(0, dtype=torch.long), torch.zeros(0, self.mel_cfg.num_mels)
        return Voice(tokens, mel, emb, str(path))
