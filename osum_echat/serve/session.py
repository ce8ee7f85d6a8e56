"""A realtime session: settings, input audio + turn detection, one reply at a time, history.

The WebSocket handler (:mod:`osum_echat.serve.app`) feeds :meth:`RealtimeSession.on_text` and
:meth:`RealtimeSession.on_bytes`; everything the client can get wrong is answered with an
``error`` event (docs/serving.md lists the codes), and ``max_protocol_errors`` errors in a row
close the socket (1008). :meth:`RealtimeSession.close` frees the decode row, the synthesis
thread and the buffers, whatever state the session is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

import numpy as np

from osum_echat.serve import protocol as P
from osum_echat.serve.response import Response, apply_overrides, history_item
from osum_echat.serve.vad import TurnDetector

logger = logging.getLogger(__name__)


class ProtocolClose(Exception):
    """Raised to make the handler close the socket with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class ServeConfig:
    """Server limits (``python -m osum_echat.bin.serve --help`` sets them)."""

    max_sessions: int = 8            # open realtime sessions; one more is refused (close 1013)
    idle_timeout_s: float = 120.0    # no client message for this long closes the session (4000)
    max_turn_s: float = 30.0         # a longer user turn is dropped (turn_too_long)
    min_turn_s: float = 0.1          # a shorter committed turn is refused (empty_turn)
    max_frame_bytes: int = 64000     # one binary frame (2 s of PCM16 at 16 kHz)
    max_protocol_errors: int = 20    # errors in a row before the socket is closed (1008)
    history_turns: int = 5           # past turns the model sees (oldest dropped)
    codes_per_char: float = 4.0      # barge-in: speech length estimate of unheard text
    audio_lead_ms: int = 1000        # reply audio is sent at most this far ahead of real time (0: unpaced)
    vad: str = "silero"              # silero | energy (a level detector, for synthetic tests)

    def validate(self) -> None:
        if self.vad not in ("silero", "energy"):
            raise ValueError(f"vad must be silero or energy, got {self.vad!r}")
        if min(self.max_sessions, self.max_frame_bytes, self.max_protocol_errors) < 1 or self.history_turns < 0:
            raise ValueError("serve: max_sessions, max_frame_bytes, max_protocol_errors >= 1, history_turns >= 0")


class RealtimeSession:
    def __init__(self, svc: Any, sid: str, send_json: Callable[[dict], Awaitable[None]],
                 send_bytes: Callable[[bytes], Awaitable[None]]) -> None:
        self.svc, self.id = svc, sid
        self.cfg: ServeConfig = svc.cfg
        self._send_json, self.send_bytes = send_json, send_bytes
        self.settings: Optional[P.SessionSettings] = None
        self.turns: list = []           # HistoryItem, at most history_turns
        self.audio: list[np.ndarray] = []
        self.n_audio = 0                # samples buffered
        self.vad: Optional[TurnDetector] = None
        self.response: Optional[Response] = None
        self.task: Optional[asyncio.Task] = None
        self.errors_in_row = 0
        self.n_responses = 0

    async def send_json(self, ev: dict) -> None:
        await self._send_json(ev)

    async def error(self, code: str, message: str) -> None:
        """Tell the client; too many in a row end the session."""
        self.svc.metrics.errors.labels(code).inc()
        self.errors_in_row += 1
        await self.send_json(P.error(code, message))
        if self.errors_in_row >= self.cfg.max_protocol_errors:
            raise ProtocolClose(P.CLOSE_POLICY, f"{self.errors_in_row} protocol errors in a row")

    # ------------------------------------------------------------------ control events
    async def on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError as err:
            return await self.error(P.E_BAD_JSON, f"text frame is not JSON: {err}")
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            return await self.error(P.E_BAD_JSON, "a control event is a JSON object with a string 'type'")
        kind = msg["type"]
        if kind not in P.CLIENT_EVENTS:
            return await self.error(P.E_UNKNOWN_EVENT, f"unknown event type {kind!r} (known: {P.CLIENT_EVENTS})")
        if kind == P.PING:
            self.errors_in_row = 0
            return await self.send_json(P.event(P.PONG))
        if kind == P.SESSION_UPDATE:
            return await self._update(msg.get("session", {}))
        if self.settings is None:
            return await self.error(P.E_NO_SESSION, f"{kind} before session.update")
        self.errors_in_row = 0
        if kind == P.SESSION_RESET:
            self.cancel_response("reset")
            self.turns, self.audio, self.n_audio = [], [], 0
            self.vad.reset()
            await self.send_json(P.event(P.SESSION_CLEARED))
        elif kind == P.AUDIO_CLEAR:
            self.audio, self.n_audio = [], 0
            await self.send_json(P.event(P.CLEARED))
        elif kind == P.RESPONSE_CANCEL:
            self.cancel_response("client")
        elif kind == P.AUDIO_COMMIT:
            await self.commit(time.perf_counter())

    async def _update(self, data: Any) -> None:
        first = self.settings is None
        try:
            new = P.updated_settings(self.settings or P.SessionSettings(), data)
            if new.voice is not None and new.voice not in self.svc.voices:
                raise P.SettingsError(f"session.voice: unknown voice {new.voice!r} (known: {sorted(self.svc.voices)})")
            apply_overrides(_Probe(), new)
        except (P.SettingsError, ValueError, TypeError) as err:
            return await self.error(P.E_BAD_SETTINGS, str(err))
        self.errors_in_row = 0
        self.settings = new
        self.vad = TurnDetector(self.svc.vad_model() if self.vad is None else self.vad.prob, new.turn_detection)
        out = dict(session_id=self.id, session=new.to_json(), output_sample_rate=self.svc.output_sample_rate,
                   think_style=self.svc.think_style)
        await self.send_json(P.event(P.SESSION_CREATED if first else P.SESSION_UPDATED, **out))

    # ------------------------------------------------------------------ audio
    async def on_bytes(self, data: bytes) -> None:
        if self.settings is None:
            return await self.error(P.E_NO_SESSION, "audio before session.update")
        if len(data) > self.cfg.max_frame_bytes:
            return await self.error(P.E_FRAME_TOO_LARGE, f"{len(data)} bytes > max_frame_bytes "
                                                         f"{self.cfg.max_frame_bytes}; send smaller frames")
        if len(data) % 2:
            return await self.error(P.E_ODD_BYTES, f"{len(data)} bytes: PCM16 frames have an even length")
        self.errors_in_row = 0
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        self.audio.append(x)
        self.n_audio += len(x)
        td = self.settings.turn_detection
        if td.mode == "server_vad":
            for ev in self.vad.push(x):
                if ev.kind == "speech_started":
                    await self._speech_started(ev.sample, td.prefix_ms)
                else:
                    await self.send_json(P.event(P.SPEECH_STOPPED, audio_ms=self._ms(ev.sample)))
                    await self.commit(time.perf_counter())
            if not self.vad.speaking:  # keep only the pre-roll while nobody speaks
                self._keep_last(int(td.prefix_ms * P.INPUT_SAMPLE_RATE / 1000) + 512)
        if self.n_audio > self.cfg.max_turn_s * P.INPUT_SAMPLE_RATE:
            self.audio, self.n_audio = [], 0
            if self.vad is not None:
                self.vad.reset()
            await self.error(P.E_TURN_TOO_LONG, f"user turn longer than max_turn_s={self.cfg.max_turn_s}; "
                                                "its audio was dropped")

    @staticmethod
    def _ms(sample: int) -> float:
        return round(sample * 1000 / P.INPUT_SAMPLE_RATE, 1)

    def _keep_last(self, n: int) -> None:
        if self.n_audio > n:
            x = np.concatenate(self.audio)[-n:]
            self.audio, self.n_audio = [x], len(x)

    async def _speech_started(self, sample: int, prefix_ms: int) -> None:
        # the turn starts at the detected onset minus the pre-roll
        back = self.vad.pos - self.vad.start_sample + int(prefix_ms * P.INPUT_SAMPLE_RATE / 1000)
        self._keep_last(back)
        if self.response is not None:
            self.cancel_response("barge_in")
        await self.send_json(P.event(P.SPEECH_STARTED, audio_ms=self._ms(sample)))

    # ------------------------------------------------------------------ turns
    def cancel_response(self, reason: str) -> None:
        if self.response is not None:
            self.response.cancel(reason)

    async def commit(self, t_end: float) -> None:
        """End the user turn now and start the reply (cancelling one still running)."""
        wav = np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.float32)
        self.audio, self.n_audio = [], 0
        if len(wav) < self.cfg.min_turn_s * P.INPUT_SAMPLE_RATE:
            return await self.error(P.E_EMPTY_TURN, f"turn of {len(wav)} samples; at least "
                                                    f"{self.cfg.min_turn_s} s of audio is needed")
        await self.send_json(P.event(P.COMMITTED, audio_ms=self._ms(len(wav))))
        if self.task is not None:
            self.cancel_response("new_turn")
            await asyncio.wait([self.task])
        self.task = asyncio.create_task(self._respond(wav, t_end))
        self.task.add_done_callback(_task_ended)

    def history(self) -> list:
        keep = self.turns[-self.cfg.history_turns:] if self.cfg.history_turns else []
        return keep

    async def _respond(self, wav: np.ndarray, t_end: float) -> None:
        import torch

        s = self.settings
        self.n_responses += 1
        rid = f"{self.id}-r{self.n_responses}"
        bot = self.svc.bot
        try:
            history = self.history() if s.task in ("s2s", "s2t_chat") else []
            sample = await asyncio.to_thread(bot.sample, s.task, torch.from_numpy(wav), None, None,
                                             _renumber(history), rid)
            req = apply_overrides(bot.request(sample), s)
        except Exception as err:  # bad audio for the encoder etc.: this turn fails, not the session
            logger.exception("%s: building the request failed", rid)
            self.svc.metrics.errors.labels(P.E_RESPONSE_FAILED).inc()
            await self.send_json(P.error(P.E_RESPONSE_FAILED, f"{type(err).__name__}: {err}", response_id=rid))
            return
        voice = self.svc.voices.get(s.voice or "default")

        def keep(outcome) -> None:
            item = history_item(len(self.turns) + 1, outcome, sample.feats)
            if item is not None:  # oldest turns beyond history_turns are dropped
                self.turns = (self.turns + [item])[-self.cfg.history_turns:] if self.cfg.history_turns else []

        self.response = Response(self.svc, rid, s.task, req, t_end, self.send_json, self.send_bytes, voice, keep)
        try:
            await self.response.run()
        except Exception as err:  # a bug or a broken socket: this reply ends, the session lives on
            logger.warning("%s: reply ended: %s: %s", rid, type(err).__name__, err,
                           exc_info=logger.isEnabledFor(logging.DEBUG))
            with contextlib.suppress(Exception):
                await self.send_json(P.error(P.E_RESPONSE_FAILED, f"{type(err).__name__}: {err}", response_id=rid))
        finally:
            self.response = None

    async def close(self) -> None:
        """Free everything (client gone, idle timeout, protocol close, shutdown)."""
        self.cancel_response("disconnect")
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 10.0)
            except (asyncio.TimeoutError, Exception):
                self.task.cancel()
        self.audio, self.turns, self.vad = [], [], None


def _task_ended(task: asyncio.Task) -> None:
    """Collect a reply task's exception (a send to a vanished client ends it; nothing to do)."""
    if not task.cancelled() and task.exception() is not None:
        logger.info("reply task ended: %s: %s", type(task.exception()).__name__, task.exception())


def _renumber(items: list) -> list:
    """History items numbered 1..n (the layout's turn indices)."""
    from osum_echat.data.sample import HistoryItem

    return [HistoryItem(i + 1, text=t.text, codes=t.codes, feats=t.feats) for i, t in enumerate(items)]


class _Probe:
    """A stand-in request to validate sampling overrides at session.update time."""

    def __init__(self) -> None:
        from osum_echat.generate.config import SamplingConfig

        self.policy = SamplingConfig()
