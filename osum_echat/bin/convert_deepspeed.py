"""DeepSpeed checkpoint directory -> one flat ``.pt`` (released key layout).

    python -m osum_echat.bin.convert_deepspeed --ckpt_dir exp/stage1/deepspeed/step_1250 --out step_1250.pt
    python -m osum_echat.bin.convert_deepspeed --ckpt_dir exp/stage1/deepspeed --out last.pt   # uses 'latest'

ZeRO 0-2: the full module weights of ``mp_rank_00_model_states.pt`` (training dtype, e.g. bf16).
ZeRO-3 (or ``--fp32``): fp32 master weights gathered with ``deepspeed.utils.zero_to_fp32``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from osum_echat.model.checkpoint import read_state_dict
from osum_echat.train.checkpointing import atomic_torch_save

logger = logging.getLogger(__name__)


def resolve_tag_dir(ckpt_dir: str | Path) -> Path:
    d = Path(ckpt_dir)
    if (d / "mp_rank_00_model_states.pt").is_file() or list(d.glob("zero_pp_rank_*model_states.pt")):
        return d
    latest = d / "latest"
    if latest.is_file():
        return d / latest.read_text().strip()
    raise FileNotFoundError(f"{d} is neither a DeepSpeed tag folder nor holds a 'latest' file")


def zero_stage(tag_dir: Path) -> int:
    files = sorted(tag_dir.glob("*optim_states.pt"))
    if not files:
        return 0
    state = torch.load(files[0], map_location="cpu", weights_only=False, mmap=True)
    osd = state.get("optimizer_state_dict", {})
    return int(osd.get("zero_stage", 0)) if isinstance(osd, dict) else 0


def convert(ckpt_dir: str | Path, out: str | Path, fp32: bool = False) -> dict[str, torch.Tensor]:
    tag_dir = resolve_tag_dir(ckpt_dir)
    stage = zero_stage(tag_dir)
    if fp32 or stage == 3:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        sd = get_fp32_state_dict_from_zero_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
    else:
        sd = read_state_dict(tag_dir / "mp_rank_00_model_states.pt")
    sd = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    atomic_torch_save(sd, out)
    logger.info("ZeRO-%d checkpoint %s -> %s (%d tensors)", stage, tag_dir, out, len(sd))
    return sd


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt_dir", required=True, help="DeepSpeed tag folder, or its parent holding 'latest'")
    p.add_argument("--out", required=True)
    p.add_argument("--fp32", action="store_true", help="gather the fp32 master weights (any ZeRO stage)")
    args = p.parse_args(argv)
    from osum_echat.bin.checks import need_dir

    need_dir(args.ckpt_dir, "--ckpt_dir")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    convert(args.ckpt_dir, args.out, args.fp32)


if __name__ == "__main__":
    main()
