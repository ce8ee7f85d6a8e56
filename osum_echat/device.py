"""The one module that knows about accelerators: CPU, CUDA and Ascend NPU.

Every other module asks this one for a device, a distributed backend, an autocast context,
a synchronisation point or a memory figure. ``torch_npu`` is imported only when it is
importable; it is never a requirement (on machines without Ascend its mere presence breaks
``import torch``, see docs/upstream_compat.md, "Environment notes").
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import resource
from typing import Iterator

import torch

logger = logging.getLogger(__name__)

_NPU_CHECKED = False
_NPU_OK = False

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def npu_available() -> bool:
    """True when ``torch_npu`` imports and reports an NPU. Imports it on first call only."""
    global _NPU_CHECKED, _NPU_OK
    if not _NPU_CHECKED:
        _NPU_CHECKED = True
        if importlib.util.find_spec("torch_npu") is not None:
            try:
                import torch_npu  # noqa: F401  (registers torch.npu)

                _NPU_OK = bool(torch.npu.is_available())  # type: ignore[attr-defined]
            except Exception as err:  # broken CANN install: fall back, but say so
                logger.warning("torch_npu is installed but unusable: %s", err)
                _NPU_OK = False
    return _NPU_OK


def cuda_available() -> bool:
    return torch.cuda.is_available()


def default_device_type() -> str:
    """'cuda' if a GPU is visible, else 'npu' if an Ascend NPU is, else 'cpu'."""
    if cuda_available():
        return "cuda"
    if npu_available():
        return "npu"
    return "cpu"


def resolve_device(name: str | torch.device | None = None, local_rank: int | None = None) -> torch.device:
    """Turn 'cpu' / 'cuda' / 'cuda:1' / 'npu' / 'auto' / None into a ``torch.device``.

    A bare accelerator type gets the process's local rank as index (``LOCAL_RANK`` under
    torchrun). Asking for an accelerator that is not present raises a clear error.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        name = default_device_type()
    kind, _, index = name.partition(":")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda" and not cuda_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA GPU")
    if kind == "npu" and not npu_available():
        raise RuntimeError("device 'npu' was requested but torch_npu is not installed or sees no NPU")
    if kind not in ("cuda", "npu"):
        raise ValueError(f"unknown device {name!r}; use cpu, cuda[:i], npu[:i] or auto")
    if not index:
        index = str(local_rank if local_rank is not None else int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(f"{kind}:{index}")


def set_device(device: torch.device) -> None:
    """Make ``device`` the current accelerator of this process (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif device.type == "npu":
        torch.npu.set_device(device)  # type: ignore[attr-defined]


def dist_backend(device: torch.device | str) -> str:
    """The collective backend for a device type: nccl (CUDA), hccl (Ascend), gloo (CPU)."""
    kind = torch.device(device).type if not isinstance(device, torch.device) else device.type
    return {"cuda": "nccl", "npu": "hccl"}.get(kind, "gloo")


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def autocast(device: torch.device, dtype: str | torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``device``; a null context for fp32 / None."""
    dt = parse_dtype(dtype) if dtype is not None else torch.float32
    if dt == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dt)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (for honest timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "npu":
        torch.npu.synchronize(device)  # type: ignore[attr-defined]


def memory_allocated_mb(device: torch.device) -> float:
    """Accelerator memory held by tensors now; 0.0 on CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    if device.type == "npu":
        return torch.npu.memory_allocated(device) / 2**20  # type: ignore[attr-defined]
    return 0.0


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory since the last reset; on CPU the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "npu":
        return torch.npu.max_memory_allocated(device) / 2**20  # type: ignore[attr-defined]
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif device.type == "npu":
        torch.npu.reset_peak_memory_stats(device)  # type: ignore[attr-defined]


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "npu":
        torch.npu.empty_cache()  # type: ignore[attr-defined]


def supports_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return True  # CPU (emulated) and Ascend 910B both run bf16


def fused_optimizer_supported(device: torch.device) -> bool:
    """Whether torch's fused AdamW kernel runs on ``device``: CUDA and CPU have one; Ascend
    NPUs go through the foreach implementation (torch_npu ships its own fused optimizers)."""
    return device.type in ("cuda", "cpu")


def npu_environment() -> dict[str, str]:
    """Environment settings recommended on Ascend clusters (applied by recipes with --device npu)."""
    return {"HCCL_CONNECT_TIMEOUT": "1200", "CPU_AFFINITY_CONF": "1", "TASK_QUEUE_ENABLE": "2"}


@contextlib.contextmanager
def timed(device: torch.device) -> Iterator[dict]:
    """``with timed(dev) as t: ...`` then ``t['ms']``: wall time with device syncs around it."""
    import time

    out: dict = {}
    synchronize(device)
    start = time.perf_counter()
    try:
        yield out
    finally:
        synchronize(device)
        out["ms"] = (time.perf_counter() - start) * 1000.0
