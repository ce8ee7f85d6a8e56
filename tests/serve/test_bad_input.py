"""Bad input never takes the server down; every case gets its documented error or close code,
and abrupt disconnects leave no decode row, synthesis thread or session behind."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helpers import ServerThread, ToneVocoder, make_bot, pcm16, script, tone  # noqa: E402

pytest.importorskip("fastapi")
pytest.importorskip("websockets")


@pytest.fixture(scope="module")
def bot(tiny_tokenizer):
    return make_bot(tiny_tokenizer)


def make_app(bot, proc, **cfg):
    from osum_echat.serve.app import build_app
    from osum_echat.serve.scheduler import SchedulerConfig
    from osum_echat.serve.session import ServeConfig

    return build_app(bot, ToneVocoder(chunk=4, delay=0.01), cfg=ServeConfig(vad="energy", **cfg),
                     scheduler=SchedulerConfig(max_batch=4, max_queue=64), processors=(proc,))


def run(coro, timeout: float = 300):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_each_bad_input_gets_its_error_and_the_session_survives(bot):
    from osum_echat.serve.client import RealtimeClient

    app = make_app(bot, script(bot, 3, 6), max_turn_s=1.0, max_frame_bytes=4000, max_protocol_errors=5)
    with ServerThread(app) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as c:
                codes = []

                async def err() -> str:
                    ev = await c.expect("never")
                    codes.append(ev["code"])
                    return ev["message"]

                await c.send_raw(b"\x00\x01")                      # audio before session.update
                await err()
                await c.commit()                                   # a turn event before session.update
                await err()
                await c.send_raw("{not json")
                await err()
                await c.send_raw('["a list"]')
                await err()
                await c.update(task="s2s", turn_detection={"mode": "none"})
                await c.send("dance")
                assert "dance" in await err()
                await c.send_raw(b"\x00" * 101)                    # odd byte count
                assert "101" in await err()
                await c.send_raw(b"\x00" * 4002)                   # over max_frame_bytes
                assert "4002" in await err()
                await c.send("session.update", session={"input_sample_rate": 44100})  # wrong rate
                assert "44100" in await err()
                await c.commit()                                   # nothing buffered
                await err()
                await c.send_audio(pcm16(tone(1.2)))               # over max_turn_s
                await err()
                # still serving: a normal turn
                await c.send_audio(pcm16(tone(0.5)))
                await c.commit()
                turn = await c.response()
                assert turn.done is not None
                return codes

        codes = run(go())
    assert codes == ["no_session", "no_session", "bad_json", "bad_json", "unknown_event", "odd_byte_count",
                     "frame_too_large", "bad_settings", "empty_turn", "turn_too_long"]


def test_repeated_errors_close_with_1008(bot):
    from websockets.exceptions import ConnectionClosed

    from osum_echat.serve.client import RealtimeClient

    with ServerThread(make_app(bot, script(bot), max_protocol_errors=3)) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as c:
                for _ in range(3):
                    await c.send_raw("nope")
                with pytest.raises(ConnectionClosed):
                    while True:
                        await c.recv(10)
                return c.ws.close_code

        assert run(go()) == 1008


@pytest.mark.slow
def test_100_abrupt_disconnects_leak_nothing(bot):
    from osum_echat.serve.client import RealtimeClient

    app = make_app(bot, script(bot, 3, 200), max_sessions=16)
    svc = app.state.svc
    with ServerThread(app) as srv:
        from osum_echat.serve.synth import SpeechStream

        def synth_threads() -> int:  # vocoder runs still going
            return SpeechStream.running

        async def one(i: int) -> None:
            c = RealtimeClient(srv.ws_url)
            await c.connect()
            await c.update(task="s2s" if i % 3 else "s2t_chat", turn_detection={"mode": "none"})
            await c.send_audio(pcm16(tone(0.3, 150 + i)))
            await c.commit()
            if i % 2:  # half vanish mid-reply (after audio started or text arrived), half right away
                await c.expect("response.audio.started", "response.text.delta")
            c.ws.transport.abort()  # no close handshake

        async def go():
            for k in range(0, 100, 10):
                await asyncio.gather(*(one(k + i) for i in range(10)))

        run(go())
        t0 = time.time()
        while (svc.sessions or not svc.scheduler.idle() or synth_threads()) \
                and time.time() - t0 < 60:
            time.sleep(0.1)
        assert not svc.sessions and svc.scheduler.active == 0 and svc.scheduler.queued == 0
        assert synth_threads() == 0  # every vocoder run ended
        # and the server still answers
        async def check():
            async with RealtimeClient(srv.ws_url) as c:
                await c.update(task="s2t_chat", turn_detection={"mode": "none"})
                await c.send_audio(pcm16(tone(0.4)))
                await c.commit()
                return await c.response()

        assert run(check()).done is not None
