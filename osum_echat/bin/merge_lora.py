"""Fold LoRA into the base weights for export (OSUM's infer.pt, or any LoRA checkpoint of ours).

    python -m osum_echat.bin.merge_lora --config conf/model/osum_7b.yaml --checkpoint infer.pt \
        --out osum_merged.pt [--hf_dir osum_hf] [--dtype bf16] [dotted.overrides=...]

Builds the model of ``--config`` (LoRA on), loads the checkpoint strictly, merges
``W + (alpha / r) * B @ A`` into every wrapped projection and writes a flat state dict with plain
Qwen2 key names (``OUT``) plus a ``.yaml`` next to it (``merged.pt`` -> ``merged.yaml``) holding
the model config with ``lora.enable: false`` (load the result with that config). ``--hf_dir``
also writes the Hugging Face style export (``model.safetensors`` + ``config.json``,
``osum_echat.model.export``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--hf_dir", default=None)
    p.add_argument("--dtype", default="fp32", help="dtype of the written weights: fp32 | bf16 | fp16")
    args, overrides = p.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from osum_echat.config import load_config, to_dict
    from osum_echat.device import parse_dtype
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import load_checkpoint, save_checkpoint
    from osum_echat.model.export import export_hf
    from osum_echat.model.trainable import merge_lora

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"unknown arguments {bad}")
    cfg = load_config(args.config, [o.lstrip("-") for o in overrides] + ["model.llm.init=config"])
    if not cfg.model.lora.enable:
        raise SystemExit(f"{args.config}: model.lora.enable is false, nothing to merge")
    model = build_model(cfg.model, apply_trainable=False)
    load_checkpoint(model, args.checkpoint)
    merge_lora(model)
    model = model.to(parse_dtype(args.dtype))
    cfg.model.lora.enable = False
    cfg.model.trainable = [t for t in cfg.model.trainable if t != "lora"] or ["adapter"]
    save_checkpoint(model, Path(args.out), info={"merged_from": str(args.checkpoint), "model": to_dict(cfg.model),
                                                  "text": to_dict(cfg.text)})
    logging.getLogger("merge_lora").info("merged LoRA of %s -> %s", args.checkpoint, args.out)
    if args.hf_dir:
        export_hf(model, cfg.model, args.hf_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
