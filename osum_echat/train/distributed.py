"""Process-group setup from the launcher's environment (torchrun, the deepspeed launcher, or
none: a plain single process is world 1 and needs no process group for torch_ddp)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from osum_echat import device as devlib

logger = logging.getLogger(__name__)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_info() -> DistInfo:
    """Rank, world size and local rank from RANK / WORLD_SIZE / LOCAL_RANK (defaults 0/1/0)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(engine: str, device: torch.device, timeout_s: int = 1800) -> DistInfo:
    """Create the process group when the launcher started several processes, or always for
    DeepSpeed (which needs one; the rendezvous variables get single-process defaults)."""
    info = env_info()
    if engine == "deepspeed":
        for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                           ("MASTER_ADDR", "127.0.0.1")):
            os.environ.setdefault(key, value)
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        import deepspeed
        from datetime import timedelta

        deepspeed.init_distributed(dist_backend=devlib.dist_backend(device),
                                   timeout=timedelta(seconds=timeout_s))
    elif info.world_size > 1:
        from datetime import timedelta

        dist.init_process_group(backend=devlib.dist_backend(device), timeout=timedelta(seconds=timeout_s))
    return info


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (sum | min | max); identity without a process group."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
                               "max": dist.ReduceOp.MAX}[op])
    return t


def teardown(exit_code: int = 0) -> None:
    """End a distributed worker cleanly: barrier, destroy the group, flush, hard exit.

    ``os._exit`` avoids gloo's worker-thread abort at interpreter teardown
    (docs/upstream_compat.md, "Environment notes"). Without a process group, nothing happens.
    """
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
            dist.destroy_process_group()
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exit_code)
