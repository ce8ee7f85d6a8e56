"""Exact byte counts to check the memory planner against: parameters, gradients and optimizer
states held after a step, and the tensors autograd saves for backward during a forward."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Bytes of unique parameters, of their ``.grad`` and of the optimizer's tensor states."""
    params = {id(p): p for p in model.parameters()}
    out = {"weights": sum(_nbytes(p) for p in params.values()),
           "gradients": sum(_nbytes(p.grad) for p in params.values() if p.grad is not None),
           "optimizer": 0}
    if optimizer is not None:
        for state in optimizer.state.values():
            # 0-d 'step' counters are not what the planner counts (a few bytes each)
            out["optimizer"] += sum(_nbytes(v) for v in state.values()
                                    if isinstance(v, torch.Tensor) and v.ndim > 0)
    return out


class SavedTensors:
    """Unique storages autograd saved, split into parameters (not extra memory), weight casts
    (autocast copies of parameters) and activations (everything else)."""

    def __init__(self, model: nn.Module) -> None:
        self._param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._param_numels = {p.numel() for p in model.parameters() if p.ndim == 2}
        self._seen: dict[int, tuple[int, str]] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. tensors without storage
            return t
        ptr = storage.data_ptr()
        if ptr in self._param_ptrs:
            kind = "parameters"
        elif t.ndim == 2 and t.numel() in self._param_numels and t.dtype != torch.float32:
            kind = "weight_casts"
        else:
            kind = "activations"
        size = storage.nbytes()
        if size > self._seen.get(ptr, (0, ""))[0]:
            self._seen[ptr] = (size, kind)
        return t

    def totals(self) -> dict[str, int]:
        out = {"parameters": 0, "weight_casts": 0, "activations": 0}
        for size, kind in self._seen.values():
            out[kind] += size
        return out


@contextmanager
def saved_tensors(model: nn.Module) -> Iterator[SavedTensors]:
    """``with saved_tensors(model) as s: loss = model(batch)`` then ``s.totals()``. Tensors
    saved inside a checkpointed region are not kept (they are recomputed), so they do not
    reach the hook either: with checkpointing only what is really kept is counted."""
    rec = SavedTensors(model)
    with torch.autograd.graph.saved_tensors_hooks(rec.pack, lambda t: t):
        yield rec
