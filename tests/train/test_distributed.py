"""Two-process training on CPU (gloo): DDP keeps parameters in sync; DeepSpeed ZeRO-2 saves,
resumes from its checkpoint and converts to one flat .pt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_helpers import REPO, torchrun  # noqa: E402

WORKER = str(Path(__file__).with_name("dist_worker.py"))


def _args(cfg: str, lists: dict[str, str], md: Path, *extra: str) -> list[str]:
    return ["--config", cfg, "--model_dir", str(md), "--device", "cpu",
            "--train_data_s2t", lists["s2t"], "--train_data_t2t", lists["t2t"], "--train_data_s2s", lists["s2s"],
            "--cv_data", lists["cv"], "train.accum_grad=2", *extra]


def test_ddp_two_ranks_stay_in_sync(tiny_config, tiny_lists, tmp_path):
    md = tmp_path / "ddp"
    res = torchrun([WORKER, str(tmp_path / "w"), *_args(tiny_config, tiny_lists, md, "train.max_steps=3",
                                                        "train.save_interval=3")], nproc=2)
    assert res.returncode == 0, res.stderr[-4000:]
    a, b = (torch.load(tmp_path / f"w.rank{r}.pt", weights_only=True) for r in (0, 1))
    saved = torch.load(md / "step_3.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], saved[k].float()) for k in a)
    assert (md / "step_3.rank0.pt").is_file() and (md / "step_3.rank1.pt").is_file()


@pytest.mark.filterwarnings("ignore")
def test_deepspeed_zero2_save_resume_convert(tiny_config, tiny_lists, tmp_path):
    pytest.importorskip("deepspeed")
    from osum_echat.bin import convert_deepspeed
    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import load_checkpoint

    md = tmp_path / "ds"
    ds = ["--train_engine", "deepspeed", "--deepspeed_config", str(REPO / "conf/deepspeed/ds_stage2.json")]
    res = torchrun([WORKER, str(tmp_path / "w"), *ds, *_args(tiny_config, tiny_lists, md, "train.dtype=bf16",
                                                              "train.max_steps=2", "train.save_interval=2")], nproc=2)
    assert res.returncode == 0, res.stderr[-4000:]
    tag_dir = md / "deepspeed" / "step_2"
    assert (tag_dir / "mp_rank_00_model_states.pt").is_file()
    assert len(list(tag_dir.glob("*zero_pp_rank_*optim_states.pt"))) == 2
    flat = md / "step_2.pt"
    conv = convert_deepspeed.convert(tag_dir, tmp_path / "conv.pt")
    saved = torch.load(flat, weights_only=True)
    assert set(conv) == set(saved) and all(torch.equal(conv[k], saved[k]) for k in saved)
    fp32 = convert_deepspeed.convert(md / "deepspeed", tmp_path / "fp32.pt", fp32=True)
    assert all(v.dtype == torch.float32 for v in fp32.values())
    cfg = load_config(tiny_config)
    model = build_model(cfg.model)
    load_checkpoint(model, tmp_path / "conv.pt")  # strict: the flat layout of the release
    res = torchrun([WORKER, str(tmp_path / "r"), *ds, *_args(tiny_config, tiny_lists, md, "train.dtype=bf16",
                                                              "train.max_steps=3", "train.save_interval=3"),
                    "--resume"], nproc=2)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "resumed from step_2" in res.stderr
    assert (md / "step_3.pt").is_file() and (md / "latest").read_text().strip() == "step_3"
