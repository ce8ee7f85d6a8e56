"""Save a randomly initialised model (the 'untrained' baseline of check_learning.py).

    python recipes/mini/local/init_random.py --config EXP/stage3/train.yaml --out untrained.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402

from osum_echat.config import load_config  # noqa: E402
from osum_echat.model.build import build_model  # noqa: E402
from osum_echat.model.checkpoint import save_checkpoint  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    save_checkpoint(build_model(load_config(a.config, []).model), a.out, {"tag": "untrained"})


if __name__ == "__main__":
    main()
