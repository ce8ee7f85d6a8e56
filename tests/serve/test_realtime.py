"""The realtime server end to end on loopback: a turn streams text then audio, VAD turns,
barge-in, history, reset, admission, idle timeout, /v1/chat, /healthz, /metrics."""

from __future__ import annotations

import asyncio
import io
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


def make_app(bot, proc=None, vocoder=None, **cfg):
    from osum_echat.serve.app import build_app
    from osum_echat.serve.scheduler import SchedulerConfig
    from osum_echat.serve.session import ServeConfig

    sched = SchedulerConfig(max_batch=cfg.pop("max_batch", 4), max_queue=cfg.pop("max_queue", 4))
    return build_app(bot, vocoder or ToneVocoder(), cfg=ServeConfig(vad="energy", **cfg), scheduler=sched,
                     processors=(proc or script(bot),))


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_turn_streams_text_then_audio(bot):
    from osum_echat.serve.client import RealtimeClient

    proc = script(bot, n_text=4, n_codes=20)
    with ServerThread(make_app(bot, proc)) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as c:
                ev = await c.update(task="s2s", turn_detection={"mode": "none"})
                assert ev["type"] == "session.created" and ev["output_sample_rate"] == 16000
                await c.send_audio(pcm16(tone(0.6)))
                await c.commit()
                return await c.response()

        turn = run(go())
    kinds = [e["type"] for e in turn.events]
    assert turn.done is not None, kinds
    assert kinds.index("response.created") < kinds.index("response.text.delta") < kinds.index("response.audio.started")
    assert kinds[-1] == "response.done"
    # 20 codes at 40 ms -> 0.8 s of 16 kHz PCM16, sent in several chunks before response.done
    assert len(turn.audio) == 2 * int(0.8 * 16000)
    assert turn.done["speech_codes"] == 20 and turn.done["stop_reason"] == "speech_end"
    t = turn.done["timings"]
    assert 0 < t["first_text_ms"] <= t["first_audio_ms"] <= t["total_ms"] and t["audio_ms"] == 800.0
    assert turn.text == turn.done["text"]


def test_server_vad_turn_then_barge_in_keeps_heard_part(bot):
    from osum_echat.serve.client import RealtimeClient, Turn

    proc = script(bot, n_text=4, n_codes=400)  # a long reply: 16 s of audio
    app = make_app(bot, proc, vocoder=ToneVocoder(chunk=4, delay=0.05))
    with ServerThread(app) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as c:
                await c.update(task="s2s", turn_detection={"silence_ms": 300, "min_speech_ms": 100})
                await c.send_audio(pcm16(np.concatenate([tone(0.5), np.zeros(8000, np.float32)])))
                turn = Turn()
                while turn.t_first_audio is None or len(turn.audio) < 2 * 16000 * 0.3:
                    c.absorb(turn, await c.recv())
                kinds = [e["type"] for e in turn.events]
                assert kinds[:3] == ["input_audio.speech_started", "input_audio.speech_stopped",
                                     "input_audio.committed"]
                await c.send_audio(pcm16(tone(0.3, 300)))  # the user speaks over the reply
                turn = await c.response(turn=turn)
                sess = next(iter(app.state.svc.sessions))
                return turn, list(sess.turns)

        turn, history = run(go())
    assert turn.cancelled is not None and turn.done is None
    c = turn.cancelled
    assert c["reason"] == "barge_in" and c["audio_sent_ms"] >= 300
    assert 0 < c["codes_heard"] < 400
    assert len(history) == 1 and history[0].codes is not None and len(history[0].codes) == c["codes_heard"]
    assert app.state.svc.scheduler.idle()


def test_history_limit_and_reset(bot):
    from osum_echat.serve.client import RealtimeClient

    app = make_app(bot, script(bot, 3, 4), history_turns=2)
    with ServerThread(app) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as c:
                await c.update(task="s2s", turn_detection={"mode": "none"})
                sizes, prompts = [], []

                async def turn():
                    await c.send_audio(pcm16(tone(0.4)))
                    await c.commit()
                    t = await c.response()
                    assert t.done is not None
                    sizes.append(len(next(iter(app.state.svc.sessions)).turns))
                    prompts.append(t.done["timings"]["prompt_tokens"])

                for _ in range(4):
                    await turn()
                await c.reset()
                await turn()
                return sizes, prompts

        sizes, prompts = run(go())
    assert sizes == [1, 2, 2, 2, 1]  # at most history_turns kept; reset forgets them
    # the prompt carries the history: it grows until the limit, then stays; after reset it is
    # the first turn's prompt again
    assert prompts[0] < prompts[1] < prompts[2] == prompts[3] and prompts[4] == prompts[0]


def test_text_task_and_settings(bot):
    from osum_echat.serve.client import RealtimeClient

    with ServerThread(make_app(bot)) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as c:
                bad = await c.update(task="karaoke")
                assert bad["type"] == "error" and bad["code"] == "bad_settings" and "task" in bad["message"]
                bad = await c.update(input_sample_rate=8000)
                assert bad["code"] == "bad_settings" and "16000" in bad["message"]
                bad = await c.update(sampling={"top_p": 2.0})
                assert bad["code"] == "bad_settings"
                bad = await c.update(colour="red")
                assert bad["code"] == "bad_settings" and "colour" in bad["message"]
                ok = await c.update(task="s2t_chat", max_reply_tokens=6, sampling={"greedy": True},
                                    turn_detection={"mode": "none"})
                assert ok["type"] == "session.created" and ok["session"]["sampling"]["greedy"] is True
                await c.send_audio(pcm16(tone(0.5)))
                await c.commit()
                return await c.response()

        turn = run(go())
    assert turn.done is not None and turn.done["speech_codes"] == 0 and len(turn.audio) == 0
    assert turn.text == turn.done["text"] and len(turn.text) > 0


def test_admission_idle_timeout_http_endpoints(bot):
    import httpx
    import soundfile as sf
    from websockets.exceptions import ConnectionClosed

    from osum_echat.serve.client import RealtimeClient

    app = make_app(bot, script(bot, 3, 8), max_sessions=1, idle_timeout_s=1.0)
    with ServerThread(app) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as first:
                await first.update(task="s2s")
                async with RealtimeClient(srv.ws_url) as second:
                    ev = await second.recv()
                    assert ev["type"] == "error" and ev["code"] == "server_busy"
                    with pytest.raises(ConnectionClosed):
                        await second.recv()
                    assert second.ws.close_code == 1013
                ev = await first.recv(timeout=10)  # nothing sent for 1 s: idle timeout
                assert ev["code"] == "idle_timeout"
                with pytest.raises(ConnectionClosed):
                    await first.recv()
                assert first.ws.close_code == 4000

        run(go())
        buf = io.BytesIO()
        sf.write(buf, tone(0.5), 16000, format="WAV")
        with httpx.Client(base_url=srv.url, timeout=60) as h:
            r = h.post("/v1/chat?task=s2s", content=buf.getvalue())
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["speech_codes"] == 8 and body["sample_rate"] == 16000 and body["audio_wav_base64"]
            assert h.post("/v1/chat", content=b"not a wav").status_code == 400
            health = h.get("/healthz").json()
            assert health["status"] == "ok" and health["sessions"] == 0 and health["decode_rows"] == 0
            metrics = h.get("/metrics").text
            assert "osum_sessions_refused_total 1.0" in metrics and "osum_first_audio_seconds" in metrics
            assert "<html" in h.get("/").text.lower()


def test_full_decode_queue_refuses_a_reply_clearly(bot):
    from osum_echat.serve.client import RealtimeClient, Turn

    # a's reply decodes 1900 codes: its row stays busy while b asks
    app = make_app(bot, script(bot, 3, 1900), max_batch=1, max_queue=0)
    with ServerThread(app) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as a, RealtimeClient(srv.ws_url) as b:
                for c in (a, b):
                    await c.update(task="s2s", max_reply_tokens=2000, turn_detection={"mode": "none"})
                    await c.send_audio(pcm16(tone(0.4)))
                await a.commit()
                ta = Turn()
                while ta.response_id == "":
                    a.absorb(ta, await a.recv())
                await b.commit()
                tb = await b.response()
                await a.cancel()
                ta = await a.response(turn=ta)
                return ta, tb

        ta, tb = run(go())
    assert tb.error is not None and tb.error["code"] == "server_busy" and "max_queue=0" in tb.error["message"]
    assert ta.cancelled is not None and ta.cancelled["reason"] == "client"


def test_token2wav_streaming_vocoder(bot, tmp_path):
    """The library's Token2Wav (a tiny fake CosyVoice folder) as the server's vocoder: several
    22.05 kHz chunks, as long in all as one-shot synthesis of the same codes."""
    from osum_echat.serve.client import RealtimeClient
    from osum_echat.token2wav import StreamConfig, Token2Wav, make_fake_cosyvoice_dir

    t2w = Token2Wav.from_pretrained(make_fake_cosyvoice_dir(tmp_path / "cv", onnx=False), device="cpu")
    app = make_app(bot, script(bot, 3, 40), vocoder=t2w)
    app.state.svc.stream_kwargs = {"config": StreamConfig(first_hop_tokens=8, hop_tokens=12, context_tokens=8,
                                                          lookahead_tokens=4, crossfade_tokens=2)}
    with ServerThread(app) as srv:
        async def go():
            async with RealtimeClient(srv.ws_url) as c:
                ev = await c.update(task="s2s", turn_detection={"mode": "none"})
                assert ev["output_sample_rate"] == 22050
                await c.send_audio(pcm16(tone(0.5)))
                await c.commit()
                return c, await c.response()

        c, turn = run(go(), timeout=300)
    chunks = [m for _, m in c.log if isinstance(m, bytes)]
    assert turn.done is not None and turn.done["speech_codes"] == 40 and turn.sample_rate == 22050
    assert len(chunks) >= 3  # streamed: first chunk after 8 codes (+4 lookahead), then every 12
    assert len(turn.audio) == 2 * (40 * 22050 // 6400) * 256  # = the one-shot length


def test_client_cli_one_turn(bot, tmp_path, capsys):
    import json

    import soundfile as sf

    from osum_echat.serve.client import main

    wav, out = tmp_path / "q.wav", tmp_path / "reply.wav"
    sf.write(str(wav), tone(0.6), 16000, subtype="PCM_16")
    with ServerThread(make_app(bot, script(bot, 3, 10))) as srv:
        rc = main(["--url", srv.ws_url, "--wav", str(wav), "--out", str(out)])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["end"] == "response.done" and res["text"]
    assert sf.info(str(out)).frames == 10 * 640  # 10 codes of 40 ms at 16 kHz
