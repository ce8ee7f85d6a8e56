"""Turn detection: a speech-probability model over 32 ms windows plus hysteresis and hang time.

:class:`TurnDetector` turns a stream of 16 kHz samples into ``speech_started`` /
``speech_stopped`` decisions:

* speech starts when the probability reaches ``threshold`` and stays above ``neg_threshold``
  for ``min_speech_ms`` (shorter bursts, e.g. a cough, start nothing);
* speech stops after ``silence_ms`` below ``neg_threshold`` (the hang time); that is the end
  of the user's turn.

The probability model is pluggable: :class:`SileroProb` (the ``silero-vad`` package, which
ships its model: no download) in the server, :class:`EnergyProb` (RMS level) where a
deterministic stand-in is wanted (tests with synthetic tones, which Silero rightly calls
non-speech).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from osum_echat.serve.protocol import INPUT_SAMPLE_RATE, VadSettings

logger = logging.getLogger(__name__)

WINDOW = 512  # samples per probability (32 ms at 16 kHz; what Silero expects)
WINDOW_MS = WINDOW * 1000 // INPUT_SAMPLE_RATE


class SileroProb:
    """Silero VAD, one stateful model per stream (its recurrent state is per session)."""

    def __init__(self) -> None:
        from silero_vad import load_silero_vad

        self.model = load_silero_vad()

    def __call__(self, window: np.ndarray) -> float:
        with torch.inference_mode():
            return float(self.model(torch.from_numpy(window), INPUT_SAMPLE_RATE))

    def reset(self) -> None:
        self.model.reset_states()


class EnergyProb:
    """RMS level mapped to [0, 1]: ``rms / full_scale_rms`` clipped (a loud tone -> 1)."""

    def __init__(self, full_scale_rms: float = 0.05) -> None:
        self.full = full_scale_rms

    def __call__(self, window: np.ndarray) -> float:
        return float(min(1.0, np.sqrt(np.mean(window.astype(np.float64) ** 2)) / self.full))

    def reset(self) -> None:
        pass


ProbModel = Callable[[np.ndarray], float]


@dataclass
class VadEvent:
    kind: str       # "speech_started" | "speech_stopped"
    sample: int     # stream position (samples since the detector started) of the decision


class TurnDetector:
    """Feeds windows to a probability model; emits start/stop decisions (see module doc)."""

    def __init__(self, prob: ProbModel, cfg: VadSettings) -> None:
        self.prob = prob
        self.cfg = cfg
        self._rest = np.zeros(0, dtype=np.float32)
        self.pos = 0             # samples consumed
        self.speaking = False
        self._run = 0            # consecutive speech windows (before start)
        self._silence = 0        # consecutive silence windows (while speaking)
        self.start_sample: Optional[int] = None

    def reset(self) -> None:
        self.speaking, self._run, self._silence, self.start_sample = False, 0, 0, None
        reset = getattr(self.prob, "reset", None)
        if reset is not None:
            reset()

    def push(self, samples: np.ndarray) -> list[VadEvent]:
        """Float32 samples (N,) -> decisions taken within them."""
        data = np.concatenate([self._rest, samples]) if self._rest.size else samples
        n = len(data) // WINDOW * WINDOW
        self._rest = data[n:].copy()
        out: list[VadEvent] = []
        need_speech = max(1, -(-self.cfg.min_speech_ms // WINDOW_MS))
        need_silence = max(1, -(-self.cfg.silence_ms // WINDOW_MS))
        for i in range(0, n, WINDOW):
            p = self.prob(data[i:i + WINDOW])
            self.pos += WINDOW
            if not self.speaking:
                if p >= self.cfg.threshold or (self._run and p >= self.cfg.neg_threshold):
                    self._run += 1
                    if self._run >= need_speech:
                        self.speaking, self._silence = True, 0
                        self.start_sample = self.pos - self._run * WINDOW
                        out.append(VadEvent("speech_started", self.pos))
                else:
                    self._run = 0
            else:
                self._silence = self._silence + 1 if p < self.cfg.neg_threshold else 0
                if self._silence >= need_silence:
                    self.speaking, self._run = False, 0
                    out.append(VadEvent("speech_stopped", self.pos))
        return out
