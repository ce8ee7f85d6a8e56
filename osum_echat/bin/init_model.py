"""Make a stage-1 starting checkpoint: Whisper encoder weights + pretrained Qwen2 weights, the
adapter and speech embedding/head freshly initialised, saved in the released flat layout.

    python -m osum_echat.bin.init_model --config conf/model/osum_echat_3b.yaml \
        --whisper medium.pt|whisper-medium-hf-dir --llm Qwen2.5-3B-Instruct-dir --out exp/init.pt
"""

from __future__ import annotations

import argparse
import logging

import torch

from osum_echat.config import load_config, to_dict
from osum_echat.model.build import build_model, count_parameters
from osum_echat.model.checkpoint import init_encoder_from_whisper, init_llm_from_hf, save_checkpoint


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--whisper", help="openai-whisper .pt file or HF Whisper folder")
    ap.add_argument("--llm", help="HF Qwen2 folder (architecture must match model.llm)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.llm.num_layers=2")
    args = ap.parse_args(argv)
    from osum_echat.bin.checks import need_dir, need_file, need_path

    need_file(args.config, "--config")
    need_path(args.whisper, "--whisper")
    need_dir(args.llm, "--llm")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_config(args.config, args.overrides)
    cfg.model.llm.init = "config"  # the weights come from --llm below (strictly checked)
    torch.manual_seed(args.seed)
    model = build_model(cfg.model, apply_trainable=False)
    if args.whisper:
        init_encoder_from_whisper(model, args.whisper)
    if args.llm:
        init_llm_from_hf(model, args.llm)
    save_checkpoint(model, args.out, info={"config": to_dict(cfg), "step": 0, "epoch": 0,
                                           "init": {"whisper": args.whisper, "llm": args.llm}})
    logging.info("wrote %s (%.1f M parameters)", args.out, count_parameters(model) / 1e6)


if __name__ == "__main__":
    main()
