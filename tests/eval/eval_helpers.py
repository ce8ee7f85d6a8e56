"""Helpers for the evaluation tests (imported by path): tiny model files, wavs, a fake vocoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "conf" / "model" / "tiny.yaml"
OVERRIDES = ["generate.max_new_tokens=5", "generate.s2s.greedy=true", "generate.understand.greedy=true",
             "generate.s2t_chat.greedy=true"]

VOCODER_PY = '''
import numpy as np


class Fake:
    def synthesize(self, codes):
        rng = np.random.default_rng(len(codes))
        return (0.1 * rng.standard_normal(640 * len(codes))).astype("float32"), 16000


def make(*args):
    return Fake()
'''


def write_wav(path: Path, seconds: float = 0.6, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype("float32"), 16000)
    return str(path)


def model_files(d: Path, tokenizer) -> dict:
    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import save_checkpoint

    tokenizer.save_pretrained(str(d / "tok"))
    torch.manual_seed(0)
    save_checkpoint(build_model(load_config(TINY).model, apply_trainable=False), d / "model.pt")
    (d / "vocoder.py").write_text(VOCODER_PY)
    return {"tok": str(d / "tok"), "ckpt": str(d / "model.pt"), "vocoder": f"{d / 'vocoder.py'}:make"}


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def cli(files: dict, suite: str, data: str, out: Path, *extra: str) -> list[str]:
    return ["--suite", suite, "--data", data, "--out", str(out), "--config", str(TINY), "--checkpoint",
            files["ckpt"], "--tokenizer", files["tok"], "--device", "cpu", *extra, *OVERRIDES]
