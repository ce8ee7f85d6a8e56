"""Training engines behind one small interface.

``forward_backward(batch, boundary)`` runs one micro-batch (loss scaled by 1/accum_grad);
``step()`` is called at every accumulation boundary and returns the global gradient norm;
``save_state`` / ``load_state`` hold everything but the weights and the per-rank state
(optimizer, scheduler; DeepSpeed: its whole checkpoint directory).

* :class:`TorchEngine`: one process, or DDP (gloo / nccl / hccl from ``device.dist_backend``)
  with ``no_sync`` on non-boundary micro-batches; clipping; bf16 autocast; fp32 weights.
* :class:`DeepSpeedEngine`: ZeRO 1/2/3 from a JSON config; accumulation, clipping and the
  bf16 master weights are DeepSpeed's. The client AdamW and schedule are ours (no fused-adam JIT).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from osum_echat import device as devlib
from osum_echat.model.batch import Batch
from osum_echat.train.config import TrainConfig
from osum_echat.train.optim import build_optimizer, build_scheduler

logger = logging.getLogger(__name__)


class Engine(Protocol):
    model: nn.Module  # the unwrapped OsumEChat
    optimizer: torch.optim.Optimizer

    def forward_backward(self, batch: Batch, boundary: bool) -> dict[str, torch.Tensor]: ...
    def step(self) -> float: ...
    def lrs(self) -> list[float]: ...
    def flat_state_dict(self) -> dict[str, torch.Tensor] | None: ...
    def save_state(self, model_dir: Path, tag: str, is_main: bool) -> None: ...
    def load_state(self, model_dir: Path, tag: str) -> None: ...
    def train(self, mode: bool = True) -> None: ...


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def compile_llm_layers(model: nn.Module) -> int:
    """``torch.compile`` each decoder layer of the LLM in place (regional compilation: the
    batch assembly around the LLM is data-dependent and stays eager). Dynamic shapes, since
    every batch has its own length. Returns the number of layers compiled."""
    layers = model.llm_body().layers
    for layer in layers:
        layer.compile(dynamic=True)
    logger.info("torch.compile: %d LLM decoder layers (compiled on first use)", len(layers))
    return len(layers)


class TorchEngine:
    """Plain PyTorch: a single process, or DistributedDataParallel when a group exists."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device, distributed: bool) -> None:
        self.cfg, self.device = cfg, device
        self.model = model.to(device)
        self.wrapped: nn.Module = self.model
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type != "cpu" else None
            # text-only batches leave the encoder/adapter unused
            self.wrapped = DDP(self.model, device_ids=ids, find_unused_parameters=True)
        self.optimizer = build_optimizer(self.model, cfg,
                                         fused=cfg.fused_optimizer and devlib.fused_optimizer_supported(device))
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.params = trainable_parameters(self.model)
        if cfg.compile:
            compile_llm_layers(self.model)

    def forward_backward(self, batch: Batch, boundary: bool) -> dict[str, torch.Tensor]:
        sync = boundary or not hasattr(self.wrapped, "no_sync")
        ctx = contextlib.nullcontext() if sync else self.wrapped.no_sync()
        with ctx:
            with devlib.autocast(self.device, self.cfg.dtype):
                out = self.wrapped(batch.to(self.device))
            (out["loss"] / self.cfg.accum_grad).backward()
        return out

    def step(self) -> float:
        if self.cfg.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        else:
            norm = float(torch.norm(torch.stack([p.grad.detach().norm() for p in self.params
                                                 if p.grad is not None])))
        if math.isfinite(norm):
            self.optimizer.step()
        else:
            logger.warning("non-finite gradient norm %s: update skipped", norm)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return norm

    def lrs(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def flat_state_dict(self) -> dict[str, torch.Tensor] | None:
        return self.model.state_dict()

    def save_state(self, model_dir: Path, tag: str, is_main: bool) -> None:
        if is_main:  # identical on every DDP rank
            from osum_echat.train.checkpointing import atomic_torch_save

            atomic_torch_save({"optimizer": self.optimizer.state_dict(),
                               "scheduler": self.scheduler.state_dict()}, model_dir / f"{tag}.train.pt")

    def load_state(self, model_dir: Path, tag: str) -> None:
        state = torch.load(model_dir / f"{tag}.train.pt", map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)


def read_deepspeed_config(path: str | Path, cfg: TrainConfig) -> dict[str, Any]:
    """Load the JSON and make it agree with ``train:`` (accumulation, clipping, dtype): the
    YAML is the single source of truth; differences are logged, not silently kept."""
    with open(path, encoding="utf-8") as f:
        ds = json.load(f)
    want = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": cfg.accum_grad,
            "gradient_clipping": cfg.grad_clip}
    for key, value in want.items():
        if key in ds and ds[key] != value:
            logger.info("deepspeed config %s=%s replaced by %s (from train:)", key, ds[key], value)
        ds[key] = value
    ds.pop("train_batch_size", None)
    ds["bf16"] = {"enabled": cfg.dtype == "bf16"}
    ds["fp16"] = {"enabled": False}
    if "optimizer" in ds or "scheduler" in ds:
        raise ValueError(f"{path}: remove 'optimizer'/'scheduler'; they come from the train: section")
    ds.setdefault("steps_per_print", 10 ** 9)  # our own progress line replaces DeepSpeed's
    return ds


class DeepSpeedEngine:
    """DeepSpeed ZeRO 1/2/3. Checkpoints go to ``model_dir/deepspeed/<tag>/``."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device, ds_config: str | Path) -> None:
        import deepspeed

        self.cfg, self.device = cfg, device
        self.ds_config = read_deepspeed_config(ds_config, cfg)
        self.zero_stage = int(self.ds_config.get("zero_optimization", {}).get("stage", 0))
        model = model.to(device)
        optimizer = build_optimizer(model, cfg, fused=False)  # ZeRO flattens params itself
        scheduler = build_scheduler(optimizer, cfg)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=self.ds_config)
        self.model = self.engine.module

    def forward_backward(self, batch: Batch, boundary: bool) -> dict[str, torch.Tensor]:
        with devlib.autocast(self.device, self.cfg.dtype):
            out = self.engine(batch.to(self.device))
        self.engine.backward(out["loss"])  # DeepSpeed scales by 1/accum itself
        if not boundary:
            self.engine.step()  # a no-op apart from DeepSpeed's micro-step bookkeeping
        return out

    def step(self) -> float:
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def lrs(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def flat_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Full weights on rank 0 (ZeRO-3 gathers them; a collective: call on every rank)."""
        if self.zero_stage == 3:
            return self.engine._zero3_consolidated_16bit_state_dict()
        return self.model.state_dict()

    def save_state(self, model_dir: Path, tag: str, is_main: bool) -> None:
        self.engine.save_checkpoint(str(model_dir / "deepspeed"), tag=tag)  # every rank

    def load_state(self, model_dir: Path, tag: str) -> None:
        path, _ = self.engine.load_checkpoint(str(model_dir / "deepspeed"), tag=tag)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint {tag} under {model_dir / 'deepspeed'}")

    def train(self, mode: bool = True) -> None:
        self.engine.train(mode)


def build_engine(name: str, model: nn.Module, cfg: TrainConfig, device: torch.device,
                 distributed: bool, deepspeed_config: str | None = None) -> Engine:
    if name == "torch_ddp":
        return TorchEngine(model, cfg, device, distributed)
    if name == "deepspeed":
        if not deepspeed_config:
            raise ValueError("--train_engine deepspeed needs --deepspeed_config conf/deepspeed/ds_stageN.json")
        return DeepSpeedEngine(model, cfg, device, deepspeed_config)
    raise ValueError(f"unknown train engine {name!r}; use torch_ddp or deepspeed")
