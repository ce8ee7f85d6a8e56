"""Chunked (streaming) token2wav with 25 Hz constants.

Two stages, each keeping its own small state:

- :class:`FlowStreamer` turns codes into mel. Each call runs the flow on a window of
  ``context`` already-committed codes, the new codes and ``lookahead`` codes. It commits the
  mel frames of the new codes, using the cumulative mapping ``frames_for(k)`` (k codes ->
  int(k / 25 * 22050 / 256) frames as upstream computes it, about 3.45 per code), so the total length equals
  the non-streaming one. The first ``crossfade`` frames of every chunk are cross-faded with
  the previous window's estimate of the same frames. The initial noise comes from a
  :class:`NoiseTape` indexed by absolute mel frame, so overlapping windows see the same noise.
  This is the 25 Hz replacement for upstream's "34 cached frames", which assumed 50 Hz.
- :class:`HiFTStreamer` vocodes committed mel. It keeps a ``context`` of mel frames and of
  committed excitation samples behind, holds back ``lookahead`` frames until more mel
  arrives, and carries the harmonic phase. With both at least the vocoder's receptive field
  (about 14 frames), chunked output equals one-shot output up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from osum_echat.token2wav.hift import HiFTGenerator


@dataclass
class StreamConfig:
    """Streaming constants, in codes (25 Hz) for the flow and in mel frames for the vocoder."""

    first_hop_tokens: int = 25  # 1.0 s of speech in the first chunk
    hop_tokens: int = 50  # 2.0 s per later chunk
    context_tokens: int = 50  # left context re-encoded by every flow window
    lookahead_tokens: int = 10  # right context held back (0.4 s)
    crossfade_tokens: int = 5  # mel cross-fade at chunk joins (about 17 frames)
    hift_context_frames: int = 24
    hift_lookahead_frames: int = 24

    def validate(self) -> None:
        if min(self.first_hop_tokens, self.hop_tokens) < 1:
            raise ValueError("hop sizes must be >= 1 code")
        if self.crossfade_tokens > self.lookahead_tokens:
            raise ValueError("crossfade_tokens must not exceed lookahead_tokens")


class NoiseTape:
    """Standard normal noise ``(1, channels, n)`` addressed by absolute position.

    Drawn on the CPU in fixed blocks from a seeded generator, so the values at a position do not
    depend on how the tape is read (chunked or whole) nor on the device.
    """

    def __init__(self, channels: int, generator: torch.Generator, block: int = 4096) -> None:
        self.channels, self.generator, self.block = channels, generator, block
        self.data = torch.zeros(1, channels, 0)

    def take(self, start: int, end: int, device: torch.device | None = None) -> torch.Tensor:
        while self.data.size(-1) < end:
            more = torch.randn(1, self.channels, self.block, generator=self.generator)
            self.data = torch.cat([self.data, more], dim=-1)
        out = self.data[:, :, start:end]
        return out.to(device) if device is not None else out


def fade_weights(n: int) -> torch.Tensor:
    """Raised-cosine fade-in ``(n,)`` from ~0 to ~1; ``1 - w`` is the matching fade-out."""
    i = torch.arange(n, dtype=torch.float32)
    return 0.5 - 0.5 * torch.cos(math.pi * (i + 0.5) / n)


def crossfade(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Blend the first ``k = min(len(new), len(old))`` steps of ``new`` with ``old`` (last dim)."""
    k = min(new.size(-1), old.size(-1))
    if k == 0:
        return new
    w = fade_weights(k).to(new)
    out = new.clone()
    out[..., :k] = new[..., :k] * w + old[..., :k].to(new) * (1 - w)
    return out


# run_flow(tokens (1, n), first_frame, n_frames, pin_edges) -> mel (1, 80, n_frames)
FlowFn = Callable[[torch.Tensor, int, int, bool], torch.Tensor]


class FlowStreamer:
    """Codes in, committed mel frames out (see the module docstring)."""

    def __init__(self, run_flow: FlowFn, frames_for: Callable[[int], int], cfg: StreamConfig) -> None:
        cfg.validate()
        self.run_flow, self.frames_for, self.cfg = run_flow, frames_for, cfg
        self.tokens: list[int] = []
        self.done = 0  # committed codes
        self.tail: torch.Tensor | None = None  # previous window's frames after the commit point

    def ready(self) -> bool:
        hop = self.cfg.first_hop_tokens if self.done == 0 else self.cfg.hop_tokens
        return len(self.tokens) - self.cfg.lookahead_tokens - self.done >= hop

    def push(self, codes: list[int]) -> None:
        self.tokens.extend(codes)

    def step(self, final: bool) -> torch.Tensor | None:
        """Commit the next chunk (everything left when ``final``); None when nothing to do."""
        cfg, f = self.cfg, self.frames_for
        avail = len(self.tokens)
        end = avail if final else avail - cfg.lookahead_tokens
        if end <= self.done:
            return None
        start = max(0, self.done - cfg.context_tokens)
        window = torch.tensor([self.tokens[start:avail]], dtype=torch.long)
        base = f(start)
        mel = self.run_flow(window, base, f(avail) - base, start == 0 and final)
        new = mel[:, :, f(self.done) - base : f(end) - base]
        if self.tail is not None:
            new = crossfade(new, self.tail)
        xf = f(end + cfg.crossfade_tokens) - f(end)
        self.tail = None if final else mel[:, :, f(end) - base : f(end) - base + xf]
        self.done = end
        return new


class HiFTStreamer:
    """Committed mel in, waveform out; exact against one-shot vocoding (see the module docstring)."""

    def __init__(self, hift: HiFTGenerator, generator: torch.Generator, context: int = 24, lookahead: int = 24) -> None:
        self.hift, self.context, self.lookahead = hift, context, lookahead
        self.hop = hift.upsample
        device = next(hift.parameters()).device
        self.device = device
        phase, _ = hift.random_state(1, 0, generator, torch.device("cpu"))
        self.init_phase = phase.to(device)
        self.noise = NoiseTape(hift.m_source.n_sines, generator)
        self.mel = torch.zeros(1, hift.cfg.in_channels, 0, device=device)
        self.offset = 0  # absolute frame index of self.mel[..., 0]
        self.done = 0  # frames vocoded and emitted
        self.phase: torch.Tensor | None = None
        self.source = torch.zeros(1, 1, 0, device=device)  # committed excitation of frames [done - len, done)

    def _excitation(self, f0: torch.Tensor, start_sample: int, phase0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        noise = self.noise.take(start_sample, start_sample + f0.size(-1), self.device)
        return self.hift.m_source(f0, self.init_phase, noise, phase0)

    @torch.inference_mode()
    def push(self, mel: torch.Tensor | None, final: bool) -> torch.Tensor:
        """Append mel ``(1, 80, t)`` and return the waveform ``(n,)`` that became final."""
        if mel is not None and mel.size(-1):
            self.mel = torch.cat([self.mel, mel.float().to(self.device)], dim=-1)
        avail = self.offset + self.mel.size(-1)
        end = avail if final else avail - self.lookahead
        if end <= self.done:
            return torch.zeros(0, device=self.device)
        ws = max(self.offset, self.done - self.context)
        win = self.mel[:, :, ws - self.offset :]
        f0 = self.hift.f0_predictor(win).repeat_interleave(self.hop, dim=-1)
        lo, mid = (self.done - ws) * self.hop, (end - ws) * self.hop
        src_commit, phase_end = self._excitation(f0[:, lo:mid], self.done * self.hop, self.phase)
        src_look, _ = self._excitation(f0[:, mid:], end * self.hop, phase_end)
        cached = self.source[:, :, self.source.size(-1) - lo :] if lo else self.source[:, :, :0]
        wav = self.hift.decode(win, torch.cat([cached, src_commit, src_look], dim=-1))[0, lo:mid]
        self.phase = phase_end
        keep = self.context * self.hop
        self.source = torch.cat([self.source, src_commit], dim=-1)[:, :, -keep:] if keep else self.source[:, :, :0]
        self.done = end
        drop = max(0, self.done - self.context) - self.offset
        if drop > 0:
            self.mel, self.offset = self.mel[:, :, drop:], self.offset + drop
        return wav
