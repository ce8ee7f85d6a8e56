"""Estimate the peak accelerator memory per rank of one training step, from a config.

    python -m osum_echat.bin.plan_memory --config conf/stage2_generation.yaml \
        [--zero 0|1|2|3] [--gpus N] [--micro_batch_tokens T] [--lora] [--checkpointing on|off] \
        [--audio_s 30] [--prompt_tokens 40] [--reply_tokens 400] [--examples 1] [--packed] \
        [--dtype bf16|fp32] [--frozen_dtype fp32|bf16] \
        [--device cuda|cpu] [--budget_gb 24] [--json] [dotted.overrides=value ...]

The model is built on the meta device (nothing allocated); the stage's trainable parts come
from ``model.trainable``. Prints a breakdown (weights, gradients, optimizer states, autocast
copies, activations, the loss's logits chunk, working set, CUDA context and fragmentation
allowances) and, with ``--budget_gb``, which variants (checkpointing, LoRA, ZeRO stages, smaller
micro-batches) would fit. Formulas: ``osum_echat/train/memory_plan.py``; docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from osum_echat.config import load_config
from osum_echat.train.memory_activations import Workload
from osum_echat.train.memory_plan import GB, PlanOptions, fitting_options, format_plan, plan_memory


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--zero", type=int, choices=[0, 1, 2, 3], default=0,
                   help="0 = torch engine (fp32 weights, bf16 autocast); 1-3 = DeepSpeed ZeRO stage")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default=None, help="default: train.dtype")
    p.add_argument("--frozen_dtype", choices=["fp32", "bf16"], default="fp32",
                   help="torch engine: store the frozen parameters in bf16 (trainable ones stay fp32)")
    p.add_argument("--lora", action="store_true", help="LoRA on the LLM instead of full fine-tuning")
    p.add_argument("--checkpointing", choices=["on", "off"], default=None,
                   help="LLM activation checkpointing (default: as configured)")
    p.add_argument("--audio_s", type=float, default=30.0, help="speech input per example, seconds")
    p.add_argument("--prompt_tokens", type=int, default=40)
    p.add_argument("--reply_tokens", type=int, default=400, help="supervised positions per example")
    p.add_argument("--examples", type=float, default=1.0, help="examples per micro-batch")
    p.add_argument("--packed", action="store_true", help="the examples share one row (else a padded row each)")
    p.add_argument("--micro_batch_tokens", type=int, default=None,
                   help="LLM positions per micro-batch (filled with examples of the shape above)")
    p.add_argument("--device", choices=["cuda", "npu", "cpu"], default="cuda")
    p.add_argument("--budget_gb", type=float, default=None)
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.add_argument("override", nargs="*")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config, args.override)
    work = Workload(args.audio_s, args.prompt_tokens, args.reply_tokens, args.examples, args.packed)
    if args.micro_batch_tokens:
        work = work.with_tokens(args.micro_batch_tokens)
    opts = PlanOptions(zero=args.zero, gpus=args.gpus, dtype=args.dtype or cfg.train.dtype,
                       lora=True if args.lora else None,
                       llm_checkpointing=None if args.checkpointing is None else args.checkpointing == "on",
                       device=args.device, frozen_dtype=args.frozen_dtype, workload=work)
    plan = plan_memory(cfg.model, opts)
    fits = fitting_options(cfg.model, opts, args.budget_gb) if args.budget_gb else []
    if args.json:
        print(json.dumps({"terms_gb": {k: round(v / GB, 4) for k, v in plan.terms.items()},
                          "allowances_gb": {k: round(v / GB, 4) for k, v in plan.allowances.items()},
                          "allocated_gb": round(plan.allocated / GB, 4), "total_gb": round(plan.total / GB, 4),
                          "params": plan.params.total, "trainable": plan.params.trainable,
                          "trainable_per_part": plan.params.trainable_per_part,
                          "fits": [{"option": n, "total_gb": round(g, 3), "fits": ok} for n, g, ok in fits]}))
        return 0
    print(format_plan(plan))
    if fits:
        print(f"\nbudget {args.budget_gb:g} GB per rank:")
        for name, gb, ok in fits:
            print(f"  {'fits ' if ok else 'over '} {gb:8.2f} GB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
