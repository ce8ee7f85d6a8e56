"""Loading and describing the released ``flow.pt`` / ``hift.pt`` state dicts.

Loading is strict: missing, unexpected or mis-shaped keys fail with a message that names
them. ``hift.pt`` keys may carry a ``generator.`` prefix (stripped) and old-style weight-norm
``weight_g``/``weight_v`` pairs, which torch's parametrized weight norm accepts through its
load hook (``parametrizations.weight.original0/1``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn

from osum_echat.token2wav.config import Token2WavConfig
from osum_echat.token2wav.flow import FlowModel
from osum_echat.token2wav.hift import HiFTGenerator

logger = logging.getLogger(__name__)

_NEW_WN = re.compile(r"^(.*)\.parametrizations\.weight\.original([01])$")
_OLD_WN = re.compile(r"^(.*)\.weight_([gv])$")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load`` on CPU, weights only; unwraps a ``{'state_dict': ...}`` / ``{'model': ...}`` wrapper."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a state dict")
    return sd


def to_new_weight_norm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename old ``X.weight_g``/``X.weight_v`` keys to ``X.parametrizations.weight.original0/1``."""
    out = {}
    for key, value in sd.items():
        match = _OLD_WN.match(key)
        if match:
            idx = "0" if match.group(2) == "g" else "1"
            key = f"{match.group(1)}.parametrizations.weight.original{idx}"
        out[key] = value
    return out


def to_old_weight_norm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`to_new_weight_norm` (the layout of the released ``hift.pt``)."""
    out = {}
    for key, value in sd.items():
        match = _NEW_WN.match(key)
        if match:
            key = f"{match.group(1)}.weight_{'g' if match.group(2) == '0' else 'v'}"
        out[key] = value
    return out


def strict_load(module: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Load ``sd`` into ``module`` strictly, raising a readable error on any mismatch."""
    sd = to_new_weight_norm(sd)
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad_shape = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(sd))
        if sd[k].shape != own[k].shape
    ]
    if missing or unexpected or bad_shape:
        lines = [f"{what}: checkpoint does not match the architecture from cosyvoice.yaml"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape)):
            if items:
                more = f" ... (+{len(items) - 8} more)" if len(items) > 8 else ""
                lines.append(f"  {title} ({len(items)}): {', '.join(items[:8])}{more}")
        raise ValueError("\n".join(lines))
    module.load_state_dict(sd, strict=True)


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}


def load_flow(module: FlowModel, path: str | Path) -> None:
    strict_load(module, read_state_dict(path), f"flow ({path})")


def load_hift(module: HiFTGenerator, path: str | Path) -> None:
    strict_load(module, strip_prefix(read_state_dict(path), "generator."), f"hift ({path})")


def expected_keys(cfg: Token2WavConfig) -> dict[str, dict[str, list[int]]]:
    """Key -> shape for flow and hift in the released layout (HiFT with old weight-norm keys).

    Built on the meta device, so release sizes cost no memory.
    """
    with torch.device("meta"):
        flow, hift = FlowModel(cfg.flow), HiFTGenerator(cfg.hift)
    return {
        "flow": {k: list(v.shape) for k, v in flow.state_dict().items()},
        "hift": {k: list(v.shape) for k, v in to_old_weight_norm(hift.state_dict()).items()},
    }
