"""torchrun worker for the multi-process tests: train, then dump this rank's weights."""

import sys

import torch

from osum_echat.bin import train
from osum_echat.train import distributed as dist_util

if __name__ == "__main__":
    out = sys.argv[1]
    train.setup_logging(dist_util.env_info().is_main)
    trainer = train.run(sys.argv[2:])
    sd = {k: v.detach().float().cpu() for k, v in trainer.engine.model.state_dict().items()}
    torch.save(sd, f"{out}.rank{dist_util.env_info().rank}.pt")
    dist_util.teardown(0)
