"""A small asyncio client of ``/v1/realtime`` (tests, the load bench and users share it).

    async with RealtimeClient("ws://127.0.0.1:8000/v1/realtime") as c:
        await c.update(task="s2s")
        await c.send_audio(pcm16_bytes, realtime=True)   # 16 kHz mono PCM16
        await c.commit()                                  # or let the server's VAD end the turn
        turn = await c.response()
        print(turn.text, len(turn.audio), turn.done["timings"])

Every received message is kept in :attr:`RealtimeClient.log` (``(time, event-or-bytes)``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from osum_echat.serve import protocol as P

FRAME_MS = 20  # audio frame length sent by send_audio


@dataclass
class Turn:
    """What arrived for one response."""

    response_id: str = ""
    text: str = ""
    think: str = ""
    audio: bytearray = field(default_factory=bytearray)  # PCM16 at sample_rate
    sample_rate: int = 0
    done: Optional[dict] = None        # response.done
    cancelled: Optional[dict] = None   # response.cancelled
    error: Optional[dict] = None       # an error event of this response
    events: list = field(default_factory=list)
    t_first_text: Optional[float] = None   # client clock (time.perf_counter)
    t_first_audio: Optional[float] = None
    t_end: Optional[float] = None

    @property
    def finished(self) -> bool:
        return self.done is not None or self.cancelled is not None or self.error is not None


class RealtimeClient:
    def __init__(self, url: str, open_timeout: float = 10.0) -> None:
        self.url = url
        self.open_timeout = open_timeout
        self.ws = None
        self.log: list[tuple[float, Union[dict, bytes]]] = []
        self.session: Optional[dict] = None

    async def __aenter__(self) -> "RealtimeClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        import websockets

        self.ws = await websockets.connect(self.url, open_timeout=self.open_timeout, max_size=2 ** 24)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def send_raw(self, data: Union[str, bytes]) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = 30.0) -> Union[dict, bytes]:
        """The next message: an event dict, or audio bytes."""
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        item = msg if isinstance(msg, bytes) else json.loads(msg)
        self.log.append((time.perf_counter(), item))
        return item

    async def expect(self, *kinds: str, timeout: float = 30.0) -> dict:
        """Skip messages until an event of one of ``kinds`` (or an error) arrives."""
        while True:
            item = await self.recv(timeout)
            if isinstance(item, dict) and (item["type"] in kinds or item["type"] == P.ERROR):
                return item

    async def update(self, timeout: float = 30.0, **session: Any) -> dict:
        await self.send(P.SESSION_UPDATE, session=session)
        ev = await self.expect(P.SESSION_CREATED, P.SESSION_UPDATED, timeout=timeout)
        if ev["type"] != P.ERROR:
            self.session = ev
        return ev

    async def send_audio(self, pcm16: bytes, realtime: bool = False, frame_ms: int = FRAME_MS) -> None:
        """PCM16 16 kHz mono in ``frame_ms`` frames; ``realtime`` paces them like a microphone."""
        step = P.INPUT_SAMPLE_RATE * frame_ms // 1000 * 2
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm16), step)):
            await self.ws.send(pcm16[i:i + step])
            if realtime:
                delay = t0 + (k + 1) * frame_ms / 1000 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def commit(self) -> None:
        await self.send(P.AUDIO_COMMIT)

    async def cancel(self) -> None:
        await self.send(P.RESPONSE_CANCEL)

    async def reset(self) -> dict:
        await self.send(P.SESSION_RESET)
        return await self.expect(P.SESSION_CLEARED)

    async def response(self, timeout: float = 60.0, turn: Optional[Turn] = None) -> Turn:
        """Collect one response until ``response.done`` / ``response.cancelled`` / an error."""
        turn = turn or Turn()
        deadline = time.perf_counter() + timeout
        while not turn.finished:
            item = await self.recv(max(deadline - time.perf_counter(), 0.001))
            self.absorb(turn, item)
        return turn

    @staticmethod
    def absorb(turn: Turn, item: Union[dict, bytes]) -> None:
        """Add one received message to ``turn``."""
        now = time.perf_counter()
        if isinstance(item, bytes):
            turn.t_first_audio = turn.t_first_audio or now
            turn.audio += item
            return
        turn.events.append(item)
        kind = item["type"]
        if kind == P.RESPONSE_CREATED:
            turn.response_id = item["response_id"]
        elif kind == P.TEXT_DELTA:
            turn.t_first_text = turn.t_first_text or now
            turn.text += item["delta"]
        elif kind == P.THINK_DELTA:
            turn.think += item["delta"]
        elif kind == P.AUDIO_STARTED:
            turn.sample_rate = item["sample_rate"]
        elif kind == P.RESPONSE_DONE:
            turn.done, turn.t_end = item, now
        elif kind == P.RESPONSE_CANCELLED:
            turn.cancelled, turn.t_end = item, now
        elif kind == P.ERROR and (item.get("response_id") or item["code"] in (P.E_BUSY, P.E_EMPTY_TURN,
                                                                              P.E_RESPONSE_FAILED)):
            turn.error, turn.t_end = item, now


async def _talk(url: str, wav_path: str, task: str, out: str) -> Turn:
    import numpy as np
    import soundfile as sf

    from osum_echat.audio.io import load_16k

    x = load_16k(wav_path).numpy()
    pcm = (np.clip(np.concatenate([x, np.zeros(P.INPUT_SAMPLE_RATE, np.float32)]), -1, 1) * 32767).astype("<i2")
    async with RealtimeClient(url) as c:
        ev = await c.update(task=task)
        if ev["type"] == P.ERROR:
            raise SystemExit(f"{ev['code']}: {ev['message']}")
        await c.send_audio(pcm.tobytes(), realtime=True)  # the server's VAD ends the turn
        turn = await c.response()
    if out and turn.audio:
        sf.write(out, np.frombuffer(bytes(turn.audio), dtype="<i2"), turn.sample_rate, subtype="PCM_16")
    return turn


def main(argv=None) -> int:
    """``python -m osum_echat.serve.client --wav question.wav [--out reply.wav]``: one spoken turn."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--url", default="ws://127.0.0.1:8000/v1/realtime")
    p.add_argument("--wav", required=True)
    p.add_argument("--task", default="s2s", choices=P.TASKS)
    p.add_argument("--out", default="", help="write the spoken reply here")
    a = p.parse_args(argv)
    turn = asyncio.run(_talk(a.url, a.wav, a.task, a.out))
    end = turn.done or turn.cancelled or turn.error or {}
    print(json.dumps({"think": turn.think, "text": turn.text, "audio_s": len(turn.audio) / 2 / max(turn.sample_rate, 1),
                      "end": end.get("type"), "timings": end.get("timings")}, ensure_ascii=False, indent=1))
    return 0 if turn.done else 1


if __name__ == "__main__":
    raise SystemExit(main())
