"""Average the last K step checkpoints of a training run.

    python -m osum_echat.bin.average_model --dst exp/stage1/avg.pt --src_dir exp/stage1 --num 5

Step checkpoints are ``step_N.pt`` (ordered by N, not by file time). Floating-point tensors are
averaged in float64 and stored in their own dtype; integer tensors are copied from the newest
checkpoint (averaging them would turn counters into floats).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
import yaml

from osum_echat.model.checkpoint import read_state_dict
from osum_echat.train.checkpointing import atomic_torch_save, step_tags

logger = logging.getLogger(__name__)


def average(paths: list[Path]) -> dict[str, torch.Tensor]:
    if not paths:
        raise ValueError("nothing to average")
    acc: dict[str, torch.Tensor] = {}
    last: dict[str, torch.Tensor] = {}
    for path in paths:
        sd = read_state_dict(path)
        if acc and set(sd) != set(last):
            raise ValueError(f"{path} has different keys from {paths[0]}")
        for k, v in sd.items():
            if v.is_floating_point():
                acc[k] = acc[k] + v.double() if k in acc else v.double()
        last = sd
    return {k: ((acc[k] / len(paths)).to(v.dtype) if v.is_floating_point() else v.clone())
            for k, v in last.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dst", required=True, help="output .pt")
    p.add_argument("--src_dir", required=True, help="model_dir of a run (holds step_N.pt)")
    p.add_argument("--num", type=int, default=5, help="how many of the newest step checkpoints")
    args = p.parse_args(argv)
    from osum_echat.bin.checks import need_dir

    need_dir(args.src_dir, "--src_dir")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tags = step_tags(args.src_dir)[-args.num:]
    if not tags:
        raise SystemExit(f"no step_N.pt checkpoints in {args.src_dir}")
    if len(tags) < args.num:
        logger.warning("only %d checkpoints in %s (asked for %d)", len(tags), args.src_dir, args.num)
    paths = [Path(args.src_dir) / f"{t}.pt" for t in tags]
    logger.info("averaging %s", ", ".join(tags))
    atomic_torch_save(average(paths), args.dst)
    with open(Path(args.dst).with_suffix(".yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump({"averaged": [str(x) for x in paths]}, f)


if __name__ == "__main__":
    main()
