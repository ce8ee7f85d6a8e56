"""Helpers for the training tests (imported by path: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CORPUS = [
    "hello world, how are you today?", "今天天气真好，我们去公园吧。", "<think>the user sounds happy<think end>",
    "transcribe this audio please", "请把这段语音转成文字", "<HAPPY><ADULT><MALE>", "i am fine thanks",
    "那真是太好了，恭喜你顺利通过！", "what is the weather like",
]


def write_jsonl(path: Path, records: list) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return str(path)


def make_wav(path: Path, seconds: float, seed: int) -> str:
    from osum_echat.audio.io import save_wav

    rng = np.random.default_rng(seed)
    save_wav(path, rng.standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1, 16000)
    return str(path)



def torchrun(args: list[str], nproc: int, cwd: Path = REPO, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}",
           *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
