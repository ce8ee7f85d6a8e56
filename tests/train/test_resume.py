"""Exact resume: a run killed with SIGKILL and resumed gives the uninterrupted run's losses
(bitwise, CPU fp32), with dropout, SpecAug, a DataLoader worker, accumulation and CV on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_helpers import REPO  # noqa: E402

MAX_STEPS = 6


def _cmd(cfg: str, lists: dict[str, str], model_dir: Path, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "osum_echat.bin.train", "--config", cfg, "--model_dir", str(model_dir),
           "--device", "cpu", "--train_data_s2t", lists["s2t"], "--train_data_t2s", lists["t2s"],
           "--train_data_t2t", lists["t2t"], "--cv_data", lists["cv"],
           f"train.max_steps={MAX_STEPS}", "train.save_interval=2", "train.accum_grad=2", "train.keep_last=2",
           "train.scheduler=warmuplr", "train.warmup_steps=3",
           "model.encoder.dropout=0.1", "model.adapter.dropout=0.1", "data.augment.spec_aug=true",
           "data.num_workers=1"]
    return cmd + (["--resume"] if resume else [])


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _steps(model_dir: Path) -> dict[int, float]:
    """Last logged loss per step (a resumed run appends the steps it redoes)."""
    out = {}
    for line in (model_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


def _wait_for_step(proc: subprocess.Popen, path: Path, step: int, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "run ended early"
        if path.is_file() and any(json.loads(x).get("step") == step and "loss" in json.loads(x)
                                  for x in path.read_text().splitlines() if x.strip()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


def test_sigkill_and_resume_matches_uninterrupted(tiny_config, tiny_lists, tmp_path):
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref = subprocess.Popen(_cmd(tiny_config, tiny_lists, ref_dir), cwd=REPO, env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cut = subprocess.Popen(_cmd(tiny_config, tiny_lists, cut_dir), cwd=REPO, env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_step(cut, cut_dir / "metrics.jsonl", MAX_STEPS - 1)
    workers = psutil.Process(cut.pid).children(recursive=True)
    assert workers, "the run has a DataLoader worker"
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    # its workers end with it (they used to linger, blocked on a full result pipe)
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, [p.pid for p in alive]
    _, err = ref.communicate(timeout=240)
    assert ref.returncode == 0, err[-3000:]
    latest = (cut_dir / "latest").read_text().strip()
    assert latest in ("step_2", "step_4")
    res = subprocess.run(_cmd(tiny_config, tiny_lists, cut_dir, resume=True), cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed from {latest}" in res.stderr
    want, got = _steps(ref_dir), _steps(cut_dir)
    first = int(latest.split("_")[1]) + 1
    assert sorted(want) == list(range(1, MAX_STEPS + 1))
    for step in range(first, MAX_STEPS + 1):
        assert got[step] == want[step], (step, got[step], want[step])  # bitwise (JSON floats round-trip)
    a = torch.load(ref_dir / f"step_{MAX_STEPS}.pt", weights_only=True)
    b = torch.load(cut_dir / f"step_{MAX_STEPS}.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
