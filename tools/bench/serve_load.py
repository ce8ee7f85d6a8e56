"""Realtime server load benchmark: N simulated clients on loopback, M spoken turns each.

The server runs in a child process (its own interpreter, as in production) on 127.0.0.1; the
clients (:class:`osum_echat.serve.client.RealtimeClient`) send recorded wavs at real-time pace
followed by silence, so the server's VAD ends each turn. Every ``barge_every``-th client talks
over each reply (but its last) as soon as the reply's first audio arrives.

    python tools/bench/serve_load.py                       # tiny random model, scripted replies
    python tools/bench/serve_load.py --mini_exp recipes/mini/exp/full --mini_data recipes/mini/data/full
    python tools/bench/serve_load.py --checkpoint language_think_final.pt --config conf/model/osum_echat_3b.yaml \
        --tokenizer /models/Qwen2.5-3B-Instruct --token2wav_dir /models/CosyVoice-300M-25Hz \
        --device auto --dtype bf16 --clients 8 --wav_glob 'test_wavs/*.wav'

Reported (server timings, ms from the VAD's end-of-turn decision): p50/p95/p99 of first text
delta and first audio byte; barge-in stop latency (VAD flags user speech -> decode row
retired); responses by outcome; errors; refused sessions; leaked decode rows / sessions after
the run (``/healthz``); server RSS growth between the end of the warm-up (every client one
turn) and the end. Bounded: at most
32 clients, 50 turns each, ``--timeout_s`` in all. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SR = 16000


# ---------------------------------------------------------------------------- server process
class SineVocoder:
    """Token2wav streaming interface stand-in for the tiny model: 40 ms of a tone per code."""

    sample_rate = SR

    def stream(self, code_iter, voice=None):
        pending = []
        for item in code_iter:
            pending += [item] if isinstance(item, int) else list(item)
            if len(pending) >= 5:
                yield _tone(0.04 * len(pending), 180.0 + pending[0] % 200)
                pending = []
        if pending:
            yield _tone(0.04 * len(pending), 180.0)


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _scripted(bot, n_text: int, n_codes: int):
    """Processor for a random tiny model: ``n_text`` text tokens, then ``n_codes`` codes."""
    import torch

    im_end, boundary = bot.decoder.ids.im_end, bot.decoder.boundary
    words = bot.tok.encode(" hello world how are you today i am fine thanks", add_special_tokens=False)

    def proc(state, logits):
        out = logits.clone()
        if state.phase == "text":  # plain words, then <|im_end|>
            n = len(state.text_ids)
            out = torch.full_like(logits, float("-inf"))
            out[im_end if n >= n_text else words[n % len(words)]] = 0.0
        elif state.boundaries >= 1:
            if len(state.speech_ids) - 1 >= n_codes:
                out = torch.full_like(logits, float("-inf"))
                out[boundary] = 0.0
            else:
                out[boundary] = float("-inf")
        return out

    return proc


def serve(args: dict, port: int) -> None:
    """Child process: build the model and run uvicorn until killed."""
    import logging

    import torch
    import uvicorn

    from osum_echat.serve.app import build_app
    from osum_echat.serve.scheduler import SchedulerConfig
    from osum_echat.serve.session import ServeConfig

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args["threads"])
    procs, kwargs = (), {}
    if args["checkpoint"]:  # a real model (e.g. the release one on a GPU) with CosyVoice
        from osum_echat.generate.echat import EChat
        from osum_echat.token2wav import StreamConfig, Token2Wav

        bot = EChat.from_pretrained(args["checkpoint"], args["config"] or None, args["tokenizer"] or None,
                                    args["device"], args["dtype"])
        vocoder = Token2Wav.from_pretrained(args["token2wav_dir"], device=args["device"]) \
            if args["token2wav_dir"] else SineVocoder()
        kwargs = {"config": StreamConfig(first_hop_tokens=10, hop_tokens=25)} if args["token2wav_dir"] else {}
    elif args["mini_exp"]:
        import importlib.util

        from osum_echat.generate.echat import EChat

        exp, data = Path(args["mini_exp"]), Path(args["mini_data"])
        bot = EChat.from_pretrained(str(exp / "stage3" / "final.pt"), str(exp / "stage3" / "train.yaml"),
                                    str(data / "tokenizer"), "cpu", "fp32")
        spec = importlib.util.spec_from_file_location("serve_vocoder", REPO / "recipes/mini/local/serve_vocoder.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        vocoder = mod.build(str(data / "codec.pt"))
    else:
        from osum_echat.config import load_config
        from osum_echat.generate.echat import EChat
        from osum_echat.model.build import build_model
        from osum_echat.text.build_tokenizer import train_bpe_tokenizer

        tok = train_bpe_tokenizer(["hello world, how are you today?", "i am fine thanks"] * 5, vocab_size=300,
                                  extra_tokens=["<think>", "<think end>"])
        cfg = load_config(REPO / "conf/model/tiny.yaml")
        torch.manual_seed(0)
        bot = EChat(build_model(cfg.model, apply_trainable=False).eval(), tok, cfg)
        vocoder = SineVocoder()
        procs = (_scripted(bot, 8, args["reply_codes"]),)
    app = build_app(bot, vocoder, cfg=ServeConfig(max_sessions=args["max_sessions"], vad=args["vad"]),
                    scheduler=SchedulerConfig(args["max_batch"], args["max_queue"]), processors=procs,
                    stream_kwargs=kwargs)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _get(url: str) -> dict:
    return json.load(urllib.request.urlopen(url, timeout=10))


# ---------------------------------------------------------------------------- clients
def _pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


async def client(idx: int, url: str, wavs: list, turns: int, barge: bool, settings: dict, out: dict) -> None:
    from websockets.exceptions import ConnectionClosed

    from osum_echat.serve.client import RealtimeClient, Turn

    c = RealtimeClient(url)
    await c.connect()
    try:
        first = await c.update(**settings)
        if first["type"] == "error":
            out["refused" if first["code"] == "server_busy" else "errors"].append(first["code"])
            return
        results: list[Turn] = []
        state = {"turn": None}

        async def receive() -> None:
            while True:
                item = await c.recv(timeout=600)
                if isinstance(item, dict) and item["type"] == "response.created":
                    state["turn"] = Turn()
                    results.append(state["turn"])
                if isinstance(item, dict) and item["type"] == "error" and not item.get("response_id"):
                    out["errors"].append(item["code"])
                if state["turn"] is not None:
                    c.absorb(state["turn"], item)

        rx = asyncio.create_task(receive())
        silence = np.zeros(int(0.9 * SR), np.float32)
        for t in range(turns):
            n_before = len(results)
            await c.send_audio(_pcm(np.concatenate([wavs[(idx + t) % len(wavs)], silence])), realtime=True)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 120:
                cur = results[-1] if len(results) > n_before else None
                if cur is not None and (cur.finished or (barge and t < turns - 1 and cur.t_first_audio)):
                    break
                await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        while results and not results[-1].finished and time.perf_counter() - t0 < 120:
            await asyncio.sleep(0.02)
        rx.cancel()
        out["turns"].extend(results)
    except ConnectionClosed as err:
        out["refused" if err.rcvd and err.rcvd.code == 1013 else "errors"].append(f"closed {err}")
    finally:
        await c.close()


def _pct(values: list, q: float):
    if not values:
        return None
    return round(float(np.percentile(values, q)), 1)


def summarize(out: dict) -> dict:
    done = [t for t in out["turns"] if t.done]
    cancelled = [t for t in out["turns"] if t.cancelled]
    timing = [t.done["timings"] for t in done] + [t.cancelled["timings"] for t in cancelled]
    first_text = [x["first_text_ms"] for x in timing if "first_text_ms" in x]
    first_audio = [x["first_audio_ms"] for x in timing if "first_audio_ms" in x]
    stop = [t.cancelled["stop_ms"] for t in cancelled]
    stats = lambda v: {"n": len(v), "p50": _pct(v, 50), "p95": _pct(v, 95), "p99": _pct(v, 99)}  # noqa: E731
    return {"responses_done": len(done), "responses_cancelled": len(cancelled),
            "responses_failed": sum(1 for t in out["turns"] if t.error), "errors": out["errors"][:20],
            "n_errors": len(out["errors"]) + sum(1 for t in out["turns"] if t.error),
            "refused_sessions": len(out["refused"]), "first_text_ms": stats(first_text),
            "first_audio_ms": stats(first_audio), "barge_in_stop_ms": stats(stop),
            "audio_s_per_reply": round(statistics.mean([len(t.audio) / 2 / max(t.sample_rate, 1) for t in done]), 2)
            if done else None}


def load_wavs(pattern: str, limit: int = 16) -> list:
    if not pattern:  # synthetic "speech": 0.8 s tone bursts (needs --vad energy)
        return [_tone(0.8, 150.0 + 40 * i) for i in range(4)]
    from osum_echat.audio.io import load_16k

    files = sorted(glob.glob(pattern))[:limit]
    if not files:
        raise SystemExit(f"no wav matches {pattern}")
    return [load_16k(f).numpy().astype(np.float32) for f in files]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--turns", type=int, default=5)
    p.add_argument("--barge_every", type=int, default=4, help="every k-th client barges in (0: none)")
    p.add_argument("--mini_exp", default="", help="mini recipe exp dir (stage3/final.pt); default tiny model")
    p.add_argument("--mini_data", default="", help="mini recipe data dir (tokenizer/, codec.pt, wav/test)")
    p.add_argument("--checkpoint", default="", help="a real model instead (with --config, --tokenizer)")
    p.add_argument("--config", default="")
    p.add_argument("--tokenizer", default="")
    p.add_argument("--token2wav_dir", default="", help="CosyVoice folder for --checkpoint (else a tone vocoder)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--wav_glob", default="", help="recorded user turns (default: mini test wavs or tones)")
    p.add_argument("--vad", default="", help="silero | energy (default: silero with wavs, energy with tones)")
    p.add_argument("--task", default="s2s")
    p.add_argument("--max_reply_tokens", type=int, default=200)
    p.add_argument("--reply_codes", type=int, default=50, help="tiny model: codes per scripted reply")
    p.add_argument("--max_sessions", type=int, default=32)
    p.add_argument("--max_batch", type=int, default=8)
    p.add_argument("--max_queue", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout_s", type=float, default=900)
    p.add_argument("--malloc_arena_max", default="2", help="glibc arenas of the server ('' = glibc default: "
                   "each reply's vocoder thread may get its own arena, RSS then settles ~40 MB higher)")
    a = p.parse_args(argv)
    a.clients, a.turns = min(a.clients, 32), min(a.turns, 50)
    if a.mini_exp and not a.wav_glob:
        a.wav_glob = str(Path(a.mini_data) / "wav" / "test" / "*.wav")
    a.vad = a.vad or ("silero" if a.wav_glob else "energy")
    wavs = load_wavs(a.wav_glob)
    port = _free_port()
    if a.malloc_arena_max:
        os.environ["MALLOC_ARENA_MAX"] = a.malloc_arena_max  # read by the child's glibc at start
    proc = mp.get_context("spawn").Process(target=serve, args=(vars(a), port), daemon=True)
    proc.start()
    base = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        try:
            _get(base + "/healthz")
            break
        except OSError:
            if time.time() - t0 > 300 or not proc.is_alive():
                raise SystemExit("server did not start")
            time.sleep(0.5)
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    settings = {"task": a.task, "max_reply_tokens": a.max_reply_tokens, "turn_detection": {"silence_ms": 400}}
    warm = {"turns": [], "errors": [], "refused": []}

    async def warm_up():  # every client once: first-call costs and the working set of N sessions
        await asyncio.gather(*(client(i, url, wavs, 1, False, settings, warm) for i in range(a.clients)))

    asyncio.run(warm_up())
    time.sleep(1.0)
    rss0 = _rss_mb(proc.pid)
    out = {"turns": [], "errors": [], "refused": []}
    t_start = time.time()

    async def everyone():
        await asyncio.gather(*(client(i, url, wavs, a.turns, bool(a.barge_every) and i % a.barge_every == a.barge_every - 1,
                                      settings, out) for i in range(a.clients)))

    try:
        asyncio.run(asyncio.wait_for(everyone(), a.timeout_s))
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    time.sleep(1.0)
    health = _get(base + "/healthz")
    rss1 = _rss_mb(proc.pid)
    proc.terminate()
    proc.join(10)
    result = {"model": a.checkpoint or ("mini" if a.mini_exp else "tiny (random, scripted replies)"), "clients": a.clients,
              "turns_per_client": a.turns, "barge_every": a.barge_every, "vad": a.vad, "task": a.task,
              "wall_s": round(time.time() - t_start, 1), "timed_out": timed_out, **summarize(out),
              "leaked_rows": health["decode_rows"] + health["queued"], "leaked_sessions": health["sessions"],
              "rss_mb_start": round(rss0, 1), "rss_growth_mb": round(rss1 - rss0, 1), "cpus": os.cpu_count(),
              "malloc_arena_max": a.malloc_arena_max, "loadavg_1m": os.getloadavg()[0]}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
