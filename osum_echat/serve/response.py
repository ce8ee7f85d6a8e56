"""One reply of a realtime session: decode through the scheduler, stream text and audio out.

Threads meet the event loop only through one ``asyncio.Queue``: the scheduler's sink (decode
thread) posts text deltas and feeds speech codes straight into the :class:`SpeechStream`
(no loop round trip before synthesis), whose thread posts audio chunks.

Timings in ``response.done`` are measured from ``t_end``, the moment the turn ended (VAD
decision or commit): ``first_text_ms``, ``first_audio_ms``, ``total_ms``, plus the decoder's
``prefill_ms`` and token counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

import numpy as np

from osum_echat.data.sample import HistoryItem
from osum_echat.serve import protocol as P
from osum_echat.serve.reply_stream import ReplyStream
from osum_echat.serve.scheduler import Busy
from osum_echat.serve.synth import SpeechStream, to_pcm16

logger = logging.getLogger(__name__)
CODE_RATE = 25  # speech codes per second


@dataclass
class Outcome:
    """What the session keeps of a finished or cancelled reply."""

    status: str                      # done | cancelled | failed | refused
    text: str = ""                   # answer text (as far as heard when cancelled)
    codes: list[int] = field(default_factory=list)


class Response:
    """A reply task; :meth:`run` returns its :class:`Outcome`."""

    def __init__(self, svc: Any, rid: str, task: str, request: Any, t_end: float,
                 send_json: Callable[[dict], Awaitable[None]], send_bytes: Callable[[bytes], Awaitable[None]],
                 voice: Any = None, keep: Optional[Callable[["Outcome"], None]] = None) -> None:
        self.svc, self.id, self.task, self.req, self.t_end = svc, rid, task, request, t_end
        self.send_json, self.send_bytes = send_json, send_bytes
        self.loop = asyncio.get_running_loop()
        self.q: asyncio.Queue = asyncio.Queue()
        dec = svc.bot.decoder
        self.stream = ReplyStream(dec.tok, dec.ids.im_end, dec.boundary)
        self.synth: Optional[SpeechStream] = None
        if task in P.SPEECH_TASKS and svc.vocoder is not None:
            self.synth = SpeechStream(svc.vocoder, voice, self._on_chunk, self._on_audio_end, svc.stream_kwargs,
                                      svc.synth_pool)
        self.job = None
        self.cancel_reason = ""
        self.t_cancel = 0.0
        self._cancel_event = asyncio.Event()
        self.audio_samples = 0
        self.text_sent = ""
        self.marks: dict[str, float] = {}
        self.keep = keep or (lambda outcome: None)  # called before the final event goes out

    # ------------------------------------------------------------------ threads -> loop
    def _post(self, *item: Any) -> None:
        self.loop.call_soon_threadsafe(self.q.put_nowait, item)

    def _sink(self, kind: str, payload: Any) -> None:
        if kind == "token":
            tok, phase, state = payload
            for what, value in self.stream.push(state.text_ids, tok, phase):
                if what == "codes":
                    if self.synth is not None:
                        self.synth.push(value)
                else:
                    self._post("delta", what, value)
        else:
            self._post(kind, payload)

    def _on_chunk(self, wav: np.ndarray) -> None:
        self._post("audio", to_pcm16(wav))

    def _on_audio_end(self, error: Optional[str]) -> None:
        self._post("audio_end", error)

    # ------------------------------------------------------------------ control
    def cancel(self, reason: str) -> None:
        """Stop decoding and synthesis now (barge-in, response.cancel, reset, disconnect)."""
        if self.cancel_reason:
            return
        self.cancel_reason, self.t_cancel = reason, time.perf_counter()
        self._cancel_event.set()
        if self.job is not None:
            self.job.cancel()
        if self.synth is not None:
            self.synth.cancel()
        self.q.put_nowait(("cancel",))

    def _ms(self, t: float) -> float:
        return round((t - self.t_end) * 1e3, 1)

    async def run(self) -> Outcome:
        try:
            return await self._run()
        except BaseException:  # the socket broke (or the task was cancelled): free the row
            self.cancel("disconnect")
            raise

    async def _run(self) -> Outcome:
        m = self.svc.metrics
        try:
            self.job = self.svc.scheduler.submit(self.req, self._sink)
        except Busy as err:
            m.errors.labels(P.E_BUSY).inc()
            m.responses.labels("refused").inc()
            if self.synth is not None:
                self.synth.cancel()
            await self.send_json(P.error(P.E_BUSY, str(err), response_id=self.id))
            return Outcome("refused")
        await self.send_json(P.event(P.RESPONSE_CREATED, response_id=self.id, task=self.task))
        reply, audio_done, error = None, self.synth is None, None
        while not self.cancel_reason and (reply is None or not audio_done):
            item = await self.q.get()
            kind = item[0]
            if kind == "delta":
                await self._delta(item[1], item[2])
            elif kind == "audio":
                await self._audio(item[1])
            elif kind == "audio_end":
                audio_done, error = True, error or item[1]
            elif kind == "done":
                reply = item[1]
                if self.synth is not None:
                    self.synth.finish()
            elif kind == "error":  # the decode row failed: no reply this turn
                if self.synth is not None:
                    self.synth.cancel()
                return await self._done(None, item[1])
        if self.cancel_reason:
            return await self._cancelled(reply, error)
        return await self._done(reply, error)

    async def _delta(self, what: str, text: str) -> None:
        if "first_text" not in self.marks:
            self.marks["first_text"] = time.perf_counter()
            self.svc.metrics.first_text.observe(self.marks["first_text"] - self.t_end)
        if what == "text":
            self.text_sent += text
        await self.send_json(P.event(P.TEXT_DELTA if what == "text" else P.THINK_DELTA,
                                     response_id=self.id, delta=text))

    async def _audio(self, pcm: bytes) -> None:
        sr = self.svc.output_sample_rate
        if "first_audio" in self.marks:  # pace: stay at most audio_lead_ms ahead of playback
            ahead = self.audio_samples / sr - (time.perf_counter() - self.marks["first_audio"])
            wait = ahead - self.svc.cfg.audio_lead_ms / 1000
            if self.svc.cfg.audio_lead_ms > 0 and wait > 0:
                try:
                    await asyncio.wait_for(self._cancel_event.wait(), wait)
                    return  # cancelled while waiting: this chunk is never sent
                except asyncio.TimeoutError:
                    pass
        if "first_audio" not in self.marks:
            self.marks["first_audio"] = time.perf_counter()
            self.svc.metrics.first_audio.observe(self.marks["first_audio"] - self.t_end)
            await self.send_json(P.event(P.AUDIO_STARTED, response_id=self.id,
                                         sample_rate=self.svc.output_sample_rate))
        await self.send_bytes(pcm)
        self.audio_samples += len(pcm) // 2
        self.svc.metrics.audio_seconds.inc(len(pcm) / 2 / self.svc.output_sample_rate)

    def _timings(self, reply: Any) -> dict:
        t = {k: round(v, 1) for k, v in (reply.timings if reply else {}).items()
             if isinstance(v, (int, float))}
        for k, v in self.marks.items():
            t[f"{k}_ms"] = self._ms(v)
        t["total_ms"] = self._ms(time.perf_counter())
        t["audio_ms"] = round(1e3 * self.audio_samples / self.svc.output_sample_rate, 1)
        return t

    async def _done(self, reply: Any, error: Optional[str]) -> Outcome:
        m = self.svc.metrics
        if reply is None:
            m.responses.labels("failed").inc()
            m.errors.labels(P.E_RESPONSE_FAILED).inc()
            await self.send_json(P.error(P.E_RESPONSE_FAILED, error or "no reply", response_id=self.id))
            return Outcome("failed")
        m.responses.labels("done").inc()
        outcome = Outcome("done", reply.text, list(reply.speech_codes))
        self.keep(outcome)
        await self.send_json(P.event(
            P.RESPONSE_DONE, response_id=self.id, text=reply.text, think=reply.think,
            stop_reason=reply.stop_reason, speech_codes=len(reply.speech_codes),
            timings=self._timings(reply), **({"audio_error": error} if error else {})))
        return outcome

    async def _cancelled(self, reply: Any, error: Optional[str]) -> Outcome:
        m = self.svc.metrics
        if reply is None and self.job is not None:  # wait (bounded) for the row to leave the batch
            try:
                while True:
                    item = await asyncio.wait_for(self.q.get(), 5.0)
                    if item[0] in ("done", "error"):
                        reply = item[1] if item[0] == "done" else None
                        break
            except asyncio.TimeoutError:
                logger.warning("response %s: decode row not retired 5 s after cancel", self.id)
        stop_s = time.perf_counter() - self.t_cancel
        m.stop.observe(stop_s)
        m.responses.labels("cancelled").inc()
        text, codes = self.heard()
        outcome = Outcome("cancelled", text, codes)
        self.keep(outcome)
        await self.send_json(P.event(
            P.RESPONSE_CANCELLED, response_id=self.id, reason=self.cancel_reason,
            audio_sent_ms=round(1e3 * self.audio_samples / self.svc.output_sample_rate, 1),
            text_heard=text, codes_heard=len(codes), stop_ms=round(stop_s * 1e3, 1),
            timings=self._timings(reply)))
        return outcome

    def heard(self) -> tuple[str, list[int]]:
        """The part of the reply the user got: the codes of the audio played by the time of the
        cancel (audio sent, at most real time since the first byte), and the same share of the
        answer text (cut at a space; the speech length of the text not yet voiced is estimated
        at ``codes_per_char`` codes a character). Text-only tasks: the text sent."""
        if self.synth is None:
            return self.text_sent, []
        codes = self.stream.codes
        sr = self.svc.output_sample_rate
        played = 0.0
        if "first_audio" in self.marks:
            played = min(self.audio_samples / sr, max(self.t_cancel - self.marks["first_audio"], 0.0))
        n = min(len(codes), int(played * CODE_RATE))
        if n == 0:
            return "", []
        text = self.stream.text
        est = max(len(codes), len(text) * self.svc.cfg.codes_per_char)
        cut = int(len(text) * min(1.0, n / max(est, 1)))
        if cut < len(text) and " " in text[:cut]:
            cut = text[:cut].rfind(" ")
        return text[:cut].strip(), list(codes[:n])


def history_item(index: int, outcome: Outcome, feats: Any) -> Optional[HistoryItem]:
    """A past turn in the trained multi-turn layout, or None when nothing was heard."""
    if outcome.status not in ("done", "cancelled") or not (outcome.text or outcome.codes):
        return None
    return HistoryItem(index, text=outcome.text, codes=list(outcome.codes) or None, feats=feats)


def apply_overrides(req: Any, settings: P.SessionSettings) -> Any:
    """The session's sampling overrides and reply length on a decode request."""
    req.policy = dataclasses.replace(req.policy, **settings.sampling.values(),
                                     max_new_tokens=settings.max_reply_tokens)
    req.policy.validate()
    return req
