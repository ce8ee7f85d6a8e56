"""average_model, rotation / latest pointer, RNG round trip, config validation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from osum_echat.bin import average_model
from osum_echat.config import ConfigError, load_config
from osum_echat.train import checkpointing as ckpt


def _write(d, step: int, value: float) -> None:
    torch.save({"w": torch.full((2, 3), value), "h": torch.full((2,), value, dtype=torch.bfloat16),
                "count": torch.tensor([step], dtype=torch.long)}, d / f"step_{step}.pt")


def test_average_last_k_by_step_number(tmp_path):
    for step, value in ((2, 1.0), (10, 3.0), (4, 100.0), (12, 5.0)):  # step_10 sorts after step_4
        _write(tmp_path, step, value)
    (tmp_path / "init.pt").write_bytes(b"")  # not a step checkpoint: ignored
    assert ckpt.step_tags(tmp_path) == ["step_2", "step_4", "step_10", "step_12"]
    average_model.main(["--dst", str(tmp_path / "avg.pt"), "--src_dir", str(tmp_path), "--num", "2"])
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    assert torch.equal(avg["w"], torch.full((2, 3), 4.0))
    assert avg["h"].dtype == torch.bfloat16 and float(avg["h"][0]) == 4.0
    assert avg["count"].dtype == torch.long and int(avg["count"]) == 12  # integers are not averaged
    assert (tmp_path / "avg.yaml").is_file()


def test_rotation_and_latest(tmp_path):
    for step in (1, 2, 3):
        _write(tmp_path, step, 1.0)
        for suffix in (".yaml", ".train.pt", ".rank0.pt"):
            (tmp_path / f"step_{step}{suffix}").write_text("x")
        (tmp_path / "deepspeed" / f"step_{step}").mkdir(parents=True)
        ckpt.write_latest(tmp_path, f"step_{step}")
        ckpt.rotate(tmp_path, keep_last=2)
    assert ckpt.read_latest(tmp_path) == "step_3"
    assert ckpt.step_tags(tmp_path) == ["step_2", "step_3"]
    assert not list(tmp_path.glob("step_1.*")) and not (tmp_path / "deepspeed" / "step_1").exists()
    assert (tmp_path / "deepspeed" / "step_2").is_dir()


def test_rng_state_round_trip(tmp_path):
    dev = torch.device("cpu")
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt.atomic_torch_save({"rng": ckpt.rng_state(dev)}, tmp_path / "r.pt")
    want = (random.random(), np.random.rand(), torch.rand(1))
    ckpt.set_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"], dev)
    got = (random.random(), np.random.rand(), torch.rand(1))
    assert want[0] == got[0] and want[1] == got[1] and torch.equal(want[2], got[2])


def test_train_config_is_validated():
    with pytest.raises(ConfigError, match="scheduler"):
        load_config(None, ["train.scheduler=linear"])
    with pytest.raises(ConfigError, match="lr_scale"):
        load_config(None, ["train.lr_scale={brain: 2.0}"])
    assert load_config(None, ["train.lr=1e-4"]).train.lr == 1e-4


def test_recipe_parses_and_rejects_unknown_options():
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    script = repo / "recipes/echat/run.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # stage window that runs nothing: options parse, nothing executes
    ok = subprocess.run(["bash", str(script), "--stage", "9", "--stop_stage", "8", "--device", "cpu",
                         "--train_engine", "torch_ddp"], cwd=repo, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["bash", str(script), "--no_such_option", "1"], cwd=repo, capture_output=True, text=True)
    assert bad.returncode != 0 and "no_such_option" in bad.stderr
