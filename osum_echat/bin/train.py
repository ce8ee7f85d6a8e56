"""Train OSUM-EChat.

    python -m osum_echat.bin.train --config conf/stage1_understanding.yaml \\
        --train_data_s2t data/train.s2t.list --cv_data data/cv.list --model_dir exp/stage1 \\
        [--checkpoint init.pt | --resume] [--train_engine torch_ddp|deepspeed] \\
        [--deepspeed_config conf/deepspeed/ds_stage2.json] [--device cpu|cuda|npu] \\
        [--tensorboard_dir DIR] [model.llm.num_layers=2 train.max_steps=10 ...]

Runs as a plain process (world 1), under ``torchrun`` (any number of nodes) or the deepspeed
launcher. ``--resume`` continues from ``model_dir/latest`` exactly (weights, optimizer,
schedule, RNGs, data position); ``--checkpoint`` only initialises the weights.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from osum_echat import device as devlib
from osum_echat.config import ExperimentConfig, load_config, save_config, to_dict
from osum_echat.train import checkpointing as ckpt
from osum_echat.train import distributed as dist_util

logger = logging.getLogger("osum_echat.train")
FAMILIES = ("s2t", "t2s", "s2s", "t2t")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="experiment YAML (conf/stage*.yaml)")
    for fam in FAMILIES:
        p.add_argument(f"--train_data_{fam}", default=None, help=f"{fam} data list (optional)")
    p.add_argument("--cv_data", default=None, help="validation list, evaluated at every checkpoint")
    p.add_argument("--model_dir", required=True)
    p.add_argument("--checkpoint", default=None, help="initial weights (released/upstream .pt or ours)")
    p.add_argument("--whisper_init", default=None,
                   help="initialise the encoder from openai-whisper .pt / HF Whisper folder (stage 1)")
    p.add_argument("--resume", action="store_true", help="continue from model_dir/latest")
    p.add_argument("--train_engine", default="torch_ddp", choices=["torch_ddp", "deepspeed"])
    p.add_argument("--deepspeed_config", default=None)
    p.add_argument("--device", default="auto", help="cpu | cuda | npu | auto")
    p.add_argument("--tensorboard_dir", default=None, help="default: <model_dir>/tensorboard")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_steps=10")
    return p


def setup_logging(is_main: bool) -> None:
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model_for_training(cfg: ExperimentConfig, checkpoint: str | None, whisper: str | None = None):
    from osum_echat.model.build import build_model, count_parameters
    from osum_echat.model.checkpoint import init_encoder_from_whisper, load_checkpoint

    model = build_model(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint)
    if whisper:
        init_encoder_from_whisper(model, whisper)
    logger.info("model: %.2fM parameters, %.2fM trainable (%s)", count_parameters(model) / 1e6,
                count_parameters(model, trainable_only=True) / 1e6, ", ".join(cfg.model.trainable))
    if cfg.train.encoder_cache_mb > 0:
        model.enable_encoder_cache(cfg.train.encoder_cache_mb)
        logger.info("encoder cache: up to %.0f MB of frozen-encoder outputs", cfg.train.encoder_cache_mb)
        aug = cfg.data.augment
        if aug.spec_aug or aug.spec_sub or aug.speed_perturb:
            logger.warning("encoder cache with feature augmentation on: augmented features rarely repeat, "
                           "so most lookups will miss")
    return model


def data_lists(args: argparse.Namespace) -> dict[str, str]:
    lists = {f: getattr(args, f"train_data_{f}") for f in FAMILIES if getattr(args, f"train_data_{f}")}
    if not lists:
        raise SystemExit("give at least one of --train_data_s2t/--train_data_t2s/--train_data_s2s/--train_data_t2t")
    return lists


def check_inputs(args: argparse.Namespace) -> None:
    """Every input path, before anything is built: one line (option, path, why) on error."""
    from osum_echat.bin.checks import need_file, need_path

    need_file(args.config, "--config")
    for fam in FAMILIES:
        need_file(getattr(args, f"train_data_{fam}"), f"--train_data_{fam}")
    need_file(args.cv_data, "--cv_data")
    need_path(args.checkpoint, "--checkpoint")
    need_path(args.whisper_init, "--whisper_init")
    need_file(args.deepspeed_config, "--deepspeed_config")


def run(argv: list[str] | None = None):
    """Train; returns the Trainer (its engine holds the model). Does not tear down the group."""
    from osum_echat.data.loader import build_loader
    from osum_echat.text.tokenizer import load_tokenizer
    from osum_echat.train.engine import build_engine
    from osum_echat.train.metrics import Reporter
    from osum_echat.train.trainer import Trainer, TrainState

    args = get_parser().parse_args(argv)
    check_inputs(args)
    info = dist_util.env_info()
    cfg = load_config(args.config, args.overrides)
    device = devlib.resolve_device(args.device, info.local_rank)
    devlib.set_device(device)
    info = dist_util.init_distributed(args.train_engine, device)
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed)
    resume_tag = ckpt.read_latest(model_dir) if args.resume else None
    if args.resume and resume_tag is None:
        logger.info("--resume: no checkpoint in %s yet, starting fresh", model_dir)
    if info.is_main:
        save_config(cfg, model_dir / "train.yaml")
    tokenizer = load_tokenizer(cfg.text.tokenizer)
    vocab = cfg.model.llm.vocab_size
    style = {"prompt_style": cfg.text.prompt_style, "lowercase_labels": cfg.text.lowercase_labels}
    loader = build_loader(cfg.data, data_lists(args), tokenizer, think_style=cfg.text.think_style,
                          text_vocab_size=vocab, rank=info.rank, world_size=info.world_size, **style)
    drops_file = model_dir / ("drops.jsonl" if info.rank == 0 else f"drops.rank{info.rank}.jsonl")
    loader.write_drops_to(drops_file)  # every drop: key, origin, reason, detail, family, step
    cv_fn = None
    if args.cv_data:
        def cv_fn():
            cv = build_loader(cfg.data, {"all": args.cv_data}, tokenizer, think_style=cfg.text.think_style,
                              text_vocab_size=vocab, rank=info.rank, world_size=info.world_size, train=False,
                              **style)
            cv.write_drops_to(drops_file.with_name(drops_file.stem + ".cv.jsonl"))
            return cv
    init = None if resume_tag else args.checkpoint
    model = build_model_for_training(cfg, init, None if resume_tag else args.whisper_init)
    state = TrainState()
    pending_rng = None
    if resume_tag and args.train_engine == "torch_ddp":
        from osum_echat.model.checkpoint import load_checkpoint

        load_checkpoint(model, model_dir / f"{resume_tag}.pt")
    engine = build_engine(args.train_engine, model, cfg.train, device, info.world_size > 1,
                          args.deepspeed_config)
    if resume_tag:
        engine.load_state(model_dir, resume_tag)
        rank_state = ckpt.load_rank_state(model_dir, resume_tag, info.rank)
        loader.load_state_dict(rank_state["loader"])
        pending_rng = rank_state["rng"]
        meta = _read_yaml(model_dir / f"{resume_tag}.yaml")
        state = TrainState(step=int(meta["step"]), micro_step=int(rank_state["micro_step"]))
        logger.info("resumed from %s (step %d)", resume_tag, state.step)
    tb_dir = args.tensorboard_dir or str(model_dir / "tensorboard")
    reporter = Reporter(model_dir, tb_dir, info.is_main, cfg.train.log_interval, cfg.train.max_steps, state.step)

    def info_fn(_st) -> dict[str, Any]:
        return {"train_engine": args.train_engine, "dtype": cfg.train.dtype, "world_size": info.world_size,
                "config": to_dict(cfg)}

    trainer = Trainer(engine=engine, cfg=cfg.train, device=device, model_dir=model_dir, loader=loader,
                      rank=info.rank, reporter=reporter, cv_loader_fn=cv_fn, info_fn=info_fn, state=state,
                      pending_rng=pending_rng)
    cache_file = cfg.train.encoder_cache_file
    if cache_file and Path(cache_file).is_file():  # entries of an earlier stage, same frozen encoder
        n = model.encoder_cache.load(cache_file, model.encoder)
        if n < 0:
            logger.info("encoder cache file %s: written for other encoder weights, not used", cache_file)
        else:
            logger.info("encoder cache file %s: %d entries", cache_file, n)
    trainer.run()
    if model.encoder_cache is not None:
        logger.info("encoder cache: %s", model.encoder_cache.stats())
        if cache_file and info.is_main:
            logger.info("encoder cache file %s: %d entries written", cache_file,
                        model.encoder_cache.save(cache_file, model.encoder))
    return trainer


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def main(argv: list[str] | None = None) -> None:
    setup_logging(dist_util.env_info().is_main)
    run(argv)
    dist_util.teardown(0)


if __name__ == "__main__":
    main()
