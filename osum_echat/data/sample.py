"""The in-pipeline record: what a source yields and what the stages fill in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

AUDIO_SUFFIXES = ("flac", "mp3", "m4a", "ogg", "opus", "wav", "wma")


@dataclass
class AudioRef:
    """Where audio comes from: encoded bytes (tar member) or a file path, optional segment."""

    data: bytes | None = None
    path: str | None = None
    start: float | None = None
    end: float | None = None
    suffix: str = "wav"
    name: str = ""  # for messages: "member KEY.wav of TAR" (bytes); the path otherwise

    def source(self) -> bytes | str:
        return self.data if self.data is not None else str(self.path)

    def label(self) -> str:
        return self.name or str(self.path)


@dataclass
class HistoryItem:
    """One past turn as stored: user audio (``wav_N``), reply text (``txt_N``), reply codes
    (``extra.speech_token_N``); after the features stage ``feats`` is (T, 80)."""

    index: int
    audio: AudioRef | None = None
    text: str | None = None
    codes: list[int] | None = None
    feats: torch.Tensor | None = None
    num_samples: int = 0  # samples at sample_rate
    sample_rate: int = 0


@dataclass
class Sample:
    """One utterance / conversation.

    Source fields: key, txt, task, extra, audio, history, uid (position of the sample in the
    epoch; seeds every per-sample random choice), origin (list line, for messages).
    Stage fields: spec (TaskSpec), segments (conversation), wav (N,) 16 kHz, num_samples,
    feats (T, 80), example (the model Example once features are in).
    """

    key: str
    txt: str = ""
    task: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    audio: AudioRef | None = None
    history: list[HistoryItem] = field(default_factory=list)
    uid: str = ""
    origin: str = ""
    # filled by the stages
    spec: Any = None
    segments: list = field(default_factory=list)
    label_len: int = 0  # supervised text ids (eos included)
    codes_len: int = 0  # supervised speech ids (boundaries included)
    wav: torch.Tensor | None = None
    sample_rate: int = 0
    num_samples: int = 0
    feats: torch.Tensor | None = None
    length: int = 0  # LLM positions (example_length) once features are in
    light: bool = False  # went through the pipeline without decoding (resume fast-forward)
