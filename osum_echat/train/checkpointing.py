"""Step checkpoints with exact resume.

Layout of ``model_dir`` for tag ``step_N`` (N = optimizer updates done):

* ``step_N.pt``           model weights, flat released layout (``model.checkpoint.save_checkpoint``)
* ``step_N.yaml``         step, epoch, lrs, losses, CV results, data position, resolved config
* ``step_N.train.pt``     optimizer + scheduler (torch engine; identical on every rank)
* ``deepspeed/step_N/``   DeepSpeed's own checkpoint (deepspeed engine)
* ``step_N.rank{r}.pt``   per rank: RNG states (python, numpy, torch, accelerator), loader state
* ``latest``              the tag of the newest complete checkpoint, written last

Every file is written to a temporary name and renamed, and ``latest`` moves only after every
rank finished, so a run killed at any moment resumes from a complete checkpoint.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from osum_echat.model.checkpoint import save_checkpoint
from osum_echat.train import distributed as dist_util

logger = logging.getLogger(__name__)

TAG_RE = re.compile(r"^step_(\d+)$")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_latest(model_dir: Path, tag: str) -> None:
    tmp = model_dir / "latest.tmp"
    tmp.write_text(tag + "\n", encoding="utf-8")
    os.replace(tmp, model_dir / "latest")


def read_latest(model_dir: str | Path) -> str | None:
    p = Path(model_dir) / "latest"
    return p.read_text(encoding="utf-8").strip() if p.is_file() else None


def step_tags(model_dir: str | Path) -> list[str]:
    """``step_N`` tags with a weights file, oldest first (by N, not by mtime)."""
    found = []
    for p in Path(model_dir).glob("step_*.pt"):
        m = TAG_RE.match(p.name[:-3])
        if m:
            found.append((int(m.group(1)), m.group(0)))
    return [t for _, t in sorted(found)]


def rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]]}
    accel = getattr(torch, device.type, None) if device.type != "cpu" else None
    if accel is not None and hasattr(accel, "get_rng_state"):
        state["accelerator"] = accel.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    accel = getattr(torch, device.type, None) if device.type != "cpu" else None
    if "accelerator" in state and accel is not None:
        accel.set_rng_state(state["accelerator"], device)


class _StateDictOnly(torch.nn.Module):
    """Lets ``save_checkpoint`` write an already gathered state dict."""

    def __init__(self, sd: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self._sd = dict(sd)

    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        return self._sd


def save_training_checkpoint(engine, model_dir: Path, tag: str, info: Mapping[str, Any],
                             rank_state: Mapping[str, Any], rank: int, keep_last: int) -> None:
    """Collective: every rank calls it. Weights + YAML (rank 0), engine state, per-rank state,
    then ``latest`` and keep-last-K rotation (rank 0)."""
    flat = engine.flat_state_dict()
    if rank == 0:
        save_checkpoint(_StateDictOnly(flat), model_dir / f"{tag}.pt", info)
    engine.save_state(model_dir, tag, rank == 0)
    atomic_torch_save(dict(rank_state), model_dir / f"{tag}.rank{rank}.pt")
    dist_util.barrier()
    if rank == 0:
        write_latest(model_dir, tag)
        rotate(model_dir, keep_last)
        logger.info("saved checkpoint %s", model_dir / f"{tag}.pt")
    dist_util.barrier()


def load_rank_state(model_dir: Path, tag: str, rank: int) -> dict[str, Any]:
    path = model_dir / f"{tag}.rank{rank}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: resume needs the same world size as the saved run")
    return torch.load(path, map_location="cpu", weights_only=True)


def remove_tag(model_dir: Path, tag: str) -> None:
    for p in model_dir.glob(f"{tag}.*"):
        if p.name.split(".")[0] == tag:
            p.unlink(missing_ok=True)
    shutil.rmtree(model_dir / "deepspeed" / tag, ignore_errors=True)


def rotate(model_dir: Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` step checkpoints (0 = keep all)."""
    if keep_last <= 0:
        return
    for tag in step_tags(model_dir)[:-keep_last]:
        remove_tag(model_dir, tag)
