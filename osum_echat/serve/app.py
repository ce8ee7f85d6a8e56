"""The ASGI app: ``WS /v1/realtime``, ``POST /v1/chat``, ``GET /healthz``, ``GET /metrics``, ``GET /``.

    app = build_app(bot, vocoder=t2w)            # bot: EChat; vocoder: token2wav streaming interface
    uvicorn.run(app, host="127.0.0.1", port=8000)

One :class:`~osum_echat.serve.scheduler.Scheduler` (one model) serves every session; it starts
and stops with the app (lifespan). docs/serving.md specifies the protocol.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response

from osum_echat.serve import protocol as P
from osum_echat.serve.metrics import Metrics
from osum_echat.serve.scheduler import Busy, Scheduler, SchedulerConfig
from osum_echat.serve.session import ProtocolClose, RealtimeSession, ServeConfig

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


class Services:
    """What every session shares: model, scheduler, vocoder, voices, limits, metrics."""

    def __init__(self, bot: Any, vocoder: Any, voices: dict, cfg: ServeConfig, sched_cfg: SchedulerConfig,
                 stream_kwargs: Optional[dict], processors: tuple = ()) -> None:
        cfg.validate()
        self.bot, self.vocoder, self.voices, self.cfg = bot, vocoder, dict(voices), cfg
        self.stream_kwargs = dict(stream_kwargs or {})
        self.metrics = Metrics()
        self.scheduler = Scheduler(bot.decoder, sched_cfg, processors)
        self.scheduler.on_step = lambda rows: self.metrics.steps.inc()
        self.sessions: set = set()
        # vocoder workers: one per possible session (a worker is held while its reply decodes)
        self.synth_pool = ThreadPoolExecutor(max_workers=cfg.max_sessions + 1, thread_name_prefix="osum-synth")
        self.output_sample_rate = int(getattr(vocoder, "sample_rate", P.INPUT_SAMPLE_RATE))
        self.think_style = getattr(getattr(bot.cfg, "text", None), "think_style", "")
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"s{next(self._ids)}"

    def vad_model(self):
        from osum_echat.serve.vad import EnergyProb, SileroProb

        return SileroProb() if self.cfg.vad == "silero" else EnergyProb()


def build_app(bot: Any, vocoder: Any = None, voices: Optional[dict] = None, cfg: Optional[ServeConfig] = None,
              scheduler: Optional[SchedulerConfig] = None, stream_kwargs: Optional[dict] = None,
              processors: tuple = ()):
    """FastAPI app over an :class:`~osum_echat.generate.echat.EChat` and an optional vocoder
    (``voices``: name -> prompt wav / Voice; "default" is used when a session names none;
    ``stream_kwargs`` go to ``vocoder.stream``; ``processors``: logits processors of every row)."""
    svc = Services(bot, vocoder, voices or {}, cfg or ServeConfig(), scheduler or SchedulerConfig(), stream_kwargs,
                   tuple(processors))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        svc.scheduler.start()
        yield
        svc.scheduler.stop()
        svc.synth_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="OSUM-EChat realtime", lifespan=lifespan)
    app.state.svc = svc

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    async def healthz() -> dict:
        s = svc.scheduler
        return {"status": "ok", "sessions": len(svc.sessions), "decode_rows": s.active, "queued": s.queued,
                "max_sessions": svc.cfg.max_sessions, "output_sample_rate": svc.output_sample_rate,
                "vocoder": type(vocoder).__name__ if vocoder is not None else None}

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        svc.metrics.rows.set(svc.scheduler.active)
        svc.metrics.queued.set(svc.scheduler.queued)
        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/chat")
    async def chat(request: Request, task: str = "s2s") -> Response:
        body = await request.body()
        try:
            return JSONResponse(await _chat(svc, body, task))
        except Busy as err:
            return JSONResponse({"error": {"code": P.E_BUSY, "message": str(err)}}, status_code=503)
        except ValueError as err:
            return JSONResponse({"error": {"code": "bad_request", "message": str(err)}}, status_code=400)

    @app.websocket("/v1/realtime")
    async def realtime(ws: WebSocket) -> None:
        await ws.accept()
        await _serve_socket(svc, ws)

    return app


async def _serve_socket(svc: Services, ws: Any) -> None:
    """One WebSocket connection, start to end; never raises."""
    if len(svc.sessions) >= svc.cfg.max_sessions:
        svc.metrics.refused.inc()
        with contextlib.suppress(Exception):
            await ws.send_text(json.dumps(P.error(P.E_BUSY, f"{len(svc.sessions)} sessions open "
                                                           f"(max_sessions={svc.cfg.max_sessions}); try again later")))
            await ws.close(P.CLOSE_BUSY, "server full")
        return
    lock = asyncio.Lock()

    async def send_json(ev: dict) -> None:
        async with lock:
            await ws.send_text(json.dumps(ev, ensure_ascii=False))

    async def send_bytes(data: bytes) -> None:
        async with lock:
            await ws.send_bytes(data)

    sess = RealtimeSession(svc, svc.new_id(), send_json, send_bytes)
    svc.sessions.add(sess)
    svc.metrics.sessions.inc()
    try:
        while True:
            try:
                msg = await asyncio.wait_for(ws.receive(), svc.cfg.idle_timeout_s)
            except asyncio.TimeoutError:
                if sess.response is not None:
                    continue
                await send_json(P.error("idle_timeout", f"no message for {svc.cfg.idle_timeout_s} s"))
                await ws.close(P.CLOSE_IDLE, "idle timeout")
                break
            if msg["type"] == "websocket.disconnect":
                break
            if msg.get("bytes") is not None:
                await sess.on_bytes(msg["bytes"])
            elif msg.get("text") is not None:
                await sess.on_text(msg["text"])
    except ProtocolClose as err:
        with contextlib.suppress(Exception):
            await ws.close(err.code, err.reason)
    except Exception as err:  # the client vanished mid-send, or a bug: end this session only
        logger.info("session %s ended: %s: %s", sess.id, type(err).__name__, err)
    finally:
        await sess.close()
        svc.sessions.discard(sess)
        svc.metrics.sessions.dec()


async def _chat(svc: Services, body: bytes, task: str) -> dict:
    """``POST /v1/chat``: a wav body -> reply text/think (+ a base64 wav when speech is made)."""
    import soundfile as sf
    import torch

    from osum_echat.audio.io import resample

    if task not in P.TASKS:
        raise ValueError(f"task must be one of {P.TASKS}")
    try:
        wav, sr = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    except Exception as err:
        raise ValueError(f"body is not a readable audio file: {err}") from None
    x = resample(torch.from_numpy(wav.mean(axis=1)), int(sr), P.INPUT_SAMPLE_RATE)
    if x.numel() < 0.1 * P.INPUT_SAMPLE_RATE or x.numel() > svc.cfg.max_turn_s * P.INPUT_SAMPLE_RATE:
        raise ValueError(f"audio must last 0.1 .. {svc.cfg.max_turn_s} s")
    req = await asyncio.to_thread(lambda: svc.bot.request(svc.bot.sample(task, x)))
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def sink(kind: str, payload: Any) -> None:
        if kind in ("done", "error") and not fut.done():
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result((kind, payload)))

    svc.scheduler.submit(req, sink)
    kind, reply = await fut
    if kind == "error":
        raise ValueError(f"decoding failed: {reply}")
    out = {"text": reply.text, "think": reply.think, "stop_reason": reply.stop_reason,
           "speech_codes": len(reply.speech_codes), "timings": reply.timings}
    if reply.speech_codes and svc.vocoder is not None:
        chunks = await asyncio.to_thread(lambda: list(svc.vocoder.stream([reply.speech_codes], voice=None,
                                                                         **svc.stream_kwargs)))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        buf = io.BytesIO()
        sf.write(buf, audio, svc.output_sample_rate, format="WAV", subtype="PCM_16")
        out.update(sample_rate=svc.output_sample_rate, audio_wav_base64=base64.b64encode(buf.getvalue()).decode())
    return out
