"""The step loop: micro-batches -> accumulation boundary -> update -> log -> checkpoint + CV.

All ranks agree on every decision that involves a collective: each micro-step starts with an
all-reduced "every rank still has a batch" flag (uneven data ends the run on every rank
instead of hanging it), and checkpoint / CV steps are pure functions of the step counter.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from osum_echat import device as devlib
from osum_echat.train import checkpointing as ckpt
from osum_echat.train import distributed as dist_util
from osum_echat.train.config import TrainConfig
from osum_echat.train.metrics import Accumulator, Reporter, batch_family, batch_sums

logger = logging.getLogger(__name__)

FAMILY_ORDER = ["s2t", "t2s", "s2s", "t2t", "mixed"]


@dataclass
class TrainState:
    step: int = 0  # optimizer updates done
    micro_step: int = 0  # micro-batches consumed since the start of the run (all sessions)
    last_train: dict[str, Any] = field(default_factory=dict)
    last_cv: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Run a block (CV) without changing the training RNG streams (keeps resume exact)."""
    state = ckpt.rng_state(device)
    try:
        yield
    finally:
        ckpt.set_rng_state(state, device)


@dataclass
class Trainer:
    engine: Any
    cfg: TrainConfig
    device: torch.device
    model_dir: Path
    loader: Any  # ResumableLoader
    rank: int
    reporter: Reporter
    cv_loader_fn: Callable[[], Iterable] | None = None
    info_fn: Callable[[TrainState], dict[str, Any]] = lambda s: {}
    state: TrainState = field(default_factory=TrainState)
    pending_rng: dict[str, Any] | None = None  # restored right after the first batch (see run)

    # ------------------------------------------------------------------ loop
    def run(self) -> TrainState:
        cfg, st = self.cfg, self.state
        if st.step >= cfg.max_steps:
            logger.info("already at step %d >= max_steps %d", st.step, cfg.max_steps)
            return st
        self.engine.train(True)
        it = iter(self.loader)
        acc, t0, boundary_seen = Accumulator(), time.perf_counter(), True
        saved_at = st.step
        while st.step < cfg.max_steps:
            batch = next(it, None)
            if self.pending_rng is not None:
                # Creating the loader iterator may draw from the torch RNG (DataLoader base
                # seed); the uninterrupted run drew it before the checkpoint was taken.
                ckpt.set_rng_state(self.pending_rng, self.device)
                self.pending_rng = None
            more = dist_util.all_reduce(torch.tensor([0 if batch is None else 1], device=self.device), "min")
            if int(more.item()) == 0:
                logger.info("data exhausted at step %d (micro-step %d)", st.step, st.micro_step)
                break
            boundary = (st.micro_step + 1) % cfg.accum_grad == 0
            out = self.engine.forward_backward(batch, boundary)
            acc.add(batch_family(batch), batch_sums(out, batch))
            st.micro_step += 1
            boundary_seen = boundary
            if not boundary:
                continue
            grad_norm = self.engine.step()
            st.step += 1
            stats = acc.reduce(self.device, FAMILY_ORDER)
            seconds = time.perf_counter() - t0
            st.last_train = {"loss": stats["all"]["loss"], "loss_text": stats["all"]["loss_text"],
                             "loss_speech": stats["all"]["loss_speech"], "grad_norm": grad_norm}
            self.reporter.step(st.step, stats, self.engine.lrs(), self.group_names(), grad_norm, seconds,
                               devlib.peak_memory_mb(self.device), self.schedule_lr())
            acc, t0 = Accumulator(), time.perf_counter()
            if st.step % cfg.save_interval == 0 or st.step == cfg.max_steps:
                self.checkpoint()
                saved_at = st.step
        if not boundary_seen:
            logger.info("%d micro-batches after the last update were not applied", st.micro_step % cfg.accum_grad)
        if saved_at != st.step:
            self.checkpoint()
        self.reporter.close()
        return st

    def schedule_lr(self) -> float:
        """The schedule's learning rate, before any part's ``train.lr_scale``."""
        groups = self.engine.optimizer.param_groups
        return groups[0]["lr"] / groups[0].get("lr_scale", 1.0) if groups else 0.0

    def group_names(self) -> list[str]:
        return [g.get("part", str(i)) + ("" if g.get("decay", True) else "_no_decay")
                for i, g in enumerate(self.engine.optimizer.param_groups)]

    # ------------------------------------------------------------------ checkpoint + CV
    def checkpoint(self) -> None:
        st = self.state
        tag = f"step_{st.step}"
        rank_state = {"rng": ckpt.rng_state(self.device), "loader": self.loader.state_dict(),
                      "micro_step": st.micro_step}
        if self.cv_loader_fn is not None:
            with preserved_rng(self.device):
                st.last_cv = self.validate()
            self.reporter.cv(st.step, st.last_cv)
        info = self.info_fn(st)
        info.update({"tag": tag, "step": st.step, "micro_step": st.micro_step,
                     "lrs": self.engine.lrs(), "train": st.last_train, "cv": st.last_cv,
                     "data": {"loader_step": rank_state["loader"]["step"],
                              "epoch": loader_epoch(rank_state["loader"])}})
        info["epoch"] = info["data"]["epoch"]
        ckpt.save_training_checkpoint(self.engine, self.model_dir, tag, info, rank_state, self.rank,
                                      self.cfg.keep_last)

    @torch.no_grad()
    def validate(self) -> dict[str, dict[str, float]]:
        """Loss and accuracy per family on the CV list (token-weighted, reduced over ranks)."""
        model = self.engine.model
        was_training = model.training
        model.eval()
        acc = Accumulator()
        # ZeRO-3 gathers parameters inside forward (a collective): ranks must step together,
        # so CV stops when the first rank runs out. Other engines evaluate every batch.
        lockstep = getattr(self.engine, "zero_stage", 0) == 3
        it = iter(self.cv_loader_fn())
        n = 0
        try:
            while True:
                limit = self.cfg.cv_max_batches and n >= self.cfg.cv_max_batches
                batch = None if limit else next(it, None)
                if lockstep:
                    flag = torch.tensor([0 if batch is None else 1], device=self.device)
                    if int(dist_util.all_reduce(flag, "min").item()) == 0:
                        break
                elif batch is None:
                    break
                with devlib.autocast(self.device, self.cfg.dtype):
                    out = model(batch.to(self.device))
                acc.add(batch_family(batch), batch_sums(out, batch))
                n += 1
        finally:
            model.train(was_training)
        return acc.reduce(self.device, FAMILY_ORDER)


def loader_epoch(state: dict[str, Any]) -> int:
    """The highest family epoch reached by any worker role (0-based)."""
    epochs = [c.get("epoch", 0) for w in state.get("workers", {}).values()
              for c in w.get("families", {}).values()]
    return max(epochs, default=0)
