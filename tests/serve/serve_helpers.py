"""Helpers for the serving tests (imported by path: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "generate"))
from gen_helpers import make_bot  # noqa: E402,F401


def tone(seconds: float, freq: float = 220.0, amp: float = 0.3, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal (harmonics + a little noise), float32 (N,)."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    x = x + 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (amp * x / np.abs(x).max()).astype(np.float32)


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def greedy_request(bot, task: str, wav: torch.Tensor, max_new: int, key: str = "utt"):
    req = bot.request(bot.sample(task, wav, key=key))
    req.policy = dataclasses.replace(req.policy, greedy=True, max_new_tokens=max_new)
    return req


def script(bot, n_text: int = 4, n_codes: int = 12):
    """A logits processor making replies of ``n_text`` text tokens then ``n_codes`` codes
    (random tiny models rarely end a phase on their own). Change ``proc.n_codes`` later."""
    im_end, boundary = bot.decoder.ids.im_end, bot.decoder.boundary
    words = bot.tok.encode(" hello world how are you today i am fine thanks", add_special_tokens=False)

    def proc(state, logits):
        if state.phase == "text":  # the words above, then <|im_end|>
            n = len(state.text_ids)
            out = torch.full_like(logits, float("-inf"))
            out[im_end if n >= proc.n_text else words[n % len(words)]] = 0.0
            return out
        if state.boundaries >= 1:
            logits = logits.clone()
            codes = len(state.speech_ids) - 1
            if codes >= proc.n_codes:
                logits[:] = float("-inf")
                logits[boundary] = 0.0
            else:
                logits[boundary] = float("-inf")
        return logits

    proc.n_text, proc.n_codes = n_text, n_codes
    return proc


class ToneVocoder:
    """The token2wav streaming interface at 16 kHz: 40 ms of a tone per code, one chunk per
    ``chunk`` codes; ``delay`` seconds of "work" per chunk."""

    sample_rate = 16000

    def __init__(self, chunk: int = 4, delay: float = 0.0) -> None:
        self.chunk, self.delay = chunk, delay

    def stream(self, code_iter, voice=None):
        import time

        pending: list[int] = []
        for item in code_iter:
            pending += [item] if isinstance(item, int) else list(item)
            while len(pending) >= self.chunk:
                time.sleep(self.delay)
                yield tone(0.04 * self.chunk, 200 + pending[0] % 200)
                pending = pending[self.chunk:]
        if pending:
            yield tone(0.04 * len(pending), 200)


class ServerThread:
    """uvicorn on 127.0.0.1 with a free port, in a thread (a context manager)."""

    def __init__(self, app) -> None:
        import socket

        self.app = app
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/realtime"

    def __enter__(self) -> "ServerThread":
        import threading
        import time

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", ws="websockets-sansio"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        t0 = time.time()
        while not self.server.started:
            if time.time() - t0 > 30:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(20)
