"""Single-process CPU training of the tiny model: loss goes down, checkpoints, CV, logging."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_helpers import write_jsonl  # noqa: E402
from osum_echat.bin import train as train_cli  # noqa: E402
from osum_echat.train import checkpointing as ckpt  # noqa: E402


def _train(cfg: str, lists: dict[str, str], model_dir: Path, *extra: str):
    args = ["--config", cfg, "--model_dir", str(model_dir), "--device", "cpu"]
    for fam in ("s2t", "t2s", "s2s", "t2t"):
        if fam in lists:
            args += [f"--train_data_{fam}", lists[fam]]
    if "cv" in lists:
        args += ["--cv_data", lists["cv"]]
    return train_cli.run(args + list(extra))


def _losses(model_dir: Path) -> list[float]:
    recs = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if "loss" in r]


def test_tiny_training_all_families(tiny_config, tiny_lists, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    md = tmp_path / "exp"
    trainer = _train(tiny_config, tiny_lists, md, "train.max_steps=6", "train.save_interval=3",
                     "train.accum_grad=2", "train.keep_last=1")
    assert len(_losses(md)) == 6
    cv_losses = [json.loads(line)["cv"]["all"]["loss"] for line in (md / "metrics.jsonl").read_text().splitlines()
                 if '"cv"' in line]
    assert len(cv_losses) == 2 and cv_losses[1] < cv_losses[0]  # the same CV list, after 3 more updates
    assert ckpt.read_latest(md) == "step_6"
    assert ckpt.step_tags(md) == ["step_6"]  # keep_last=1 rotated step_3 away
    assert not list(md.glob("step_3.*"))
    for name in ("train.yaml", "step_6.pt", "step_6.yaml", "step_6.train.pt", "step_6.rank0.pt"):
        assert (md / name).is_file(), name
    info = yaml.safe_load((md / "step_6.yaml").read_text())
    assert info["step"] == 6 and info["micro_step"] == 12
    assert info["config"]["train"]["accum_grad"] == 2
    cv = info["cv"]
    assert {"s2t", "s2s", "t2s", "t2t", "all"} <= set(cv)
    assert cv["all"]["tokens"] == sum(cv[f]["tokens"] for f in ("s2t", "s2s", "t2s", "t2t"))
    assert 0 < cv["all"]["loss"] < 20
    assert any("ETA" in r.getMessage() for r in caplog.records)
    sd = torch.load(md / "step_6.pt", weights_only=True)
    ref = trainer.engine.model.state_dict()
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
    # --checkpoint initialises the next run's weights (strict); lr ~0 keeps them unchanged
    md2 = tmp_path / "from_ckpt"
    _train(tiny_config, {"t2t": tiny_lists["t2t"]}, md2, "--checkpoint", str(md / "step_6.pt"),
           "train.max_steps=1", "train.lr=1.0e-12")
    sd2 = torch.load(md2 / "step_1.pt", weights_only=True)
    assert all(torch.allclose(sd2[k], sd[k], atol=1e-6) for k in sd)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(md / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"train/loss", "train/grad_norm", "train/tokens_per_s", "train/padding_ratio",
            "train/loss_s2t", "cv/all/loss", "cv/s2s/acc_speech"} <= tags


def test_upstream_fake_shard_trains(tiny_config, tmp_path, upstream_fake):
    shard_list = write_jsonl(tmp_path / "shards.list", [])
    Path(shard_list).write_text(f"{upstream_fake}/shard/shards_000000000.tar\n")
    md = tmp_path / "exp"
    _train(tiny_config, {"s2s": shard_list}, md,
           "train.max_steps=6", "train.save_interval=6", "data.batch.batch_size=1",
           f"data.path_prefix_map={{'./common_utils/fake_data/': '{upstream_fake}/'}}")
    losses = _losses(md)
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_lora_bf16_activation_checkpointing(tiny_config, tiny_lists, tmp_path):
    md = tmp_path / "lora"
    trainer = _train(tiny_config, {"t2t": tiny_lists["t2t"], "s2t": tiny_lists["s2t"]}, md,
                     "train.max_steps=2", "train.save_interval=2", "train.dtype=bf16",
                     "model.lora.enable=true", "model.trainable=[lora,speech]",
                     "model.llm.activation_checkpointing=true", "model.encoder.activation_checkpointing=true")
    groups = trainer.engine.optimizer.param_groups
    assert {g["part"] for g in groups} == {"lora", "speech"}
    model = trainer.engine.model
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, fp32 master weights
    sd = torch.load(md / "step_2.pt", weights_only=True)
    assert any(".lora_" in k for k in sd)
    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import load_checkpoint

    cfg = load_config(tiny_config, ["model.lora.enable=true", "model.trainable=[lora,speech]"])
    fresh = build_model(cfg.model)
    load_checkpoint(fresh, md / "step_2.pt")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in sd.items())


def test_logged_lr_is_the_schedule_rate_not_a_scaled_part(tiny_config, tiny_lists, tmp_path):
    md = tmp_path / "exp"
    trainer = _train(tiny_config, {"s2t": tiny_lists["s2t"]}, md, "train.max_steps=2",
                     "train.lr_scale.adapter=0.1")
    param_groups = trainer.engine.optimizer.param_groups
    assert param_groups[0]["part"] == "adapter"  # the first group is the scaled one
    groups = {g["part"]: g["lr"] for g in param_groups}
    assert trainer.schedule_lr() == pytest.approx(groups["llm"])
    assert groups["adapter"] == pytest.approx(0.1 * groups["llm"])
    last = [json.loads(line) for line in (md / "metrics.jsonl").read_text().splitlines() if '"loss"' in line][-1]
    assert last["lr"] > 5 * groups["adapter"]  # the logged rate is the schedule's, not the first group's


def test_encoder_cache_run_matches_an_uncached_run(tiny_config, tiny_lists, tmp_path, caplog):
    # 8 utterances, batches of 2, 8 steps: two passes, so the second one is served from the cache.
    caplog.set_level(logging.INFO)
    common = ("train.max_steps=8", "model.trainable=[adapter,llm]")
    _train(tiny_config, {"s2t": tiny_lists["s2t"]}, tmp_path / "plain", *common)
    caplog.clear()
    trainer = _train(tiny_config, {"s2t": tiny_lists["s2t"]}, tmp_path / "cached", *common,
                     "train.encoder_cache_mb=8")
    stats = trainer.engine.model.encoder_cache.stats()
    assert stats["misses"] == 8 and stats["hits"] == 8 and stats["entries"] == 8
    assert any("encoder cache: {" in r.getMessage() for r in caplog.records)
    assert _losses(tmp_path / "cached") == pytest.approx(_losses(tmp_path / "plain"), abs=1e-4)
    with pytest.raises(ValueError, match="frozen encoder"):   # tiny.yaml trains the encoder
        _train(tiny_config, {"s2t": tiny_lists["s2t"]}, tmp_path / "bad", "train.encoder_cache_mb=8")
    # train.encoder_cache_file: the next stage with the same frozen encoder starts with every entry
    shared = f"train.encoder_cache_file={tmp_path / 'enc_cache.pt'}"
    _train(tiny_config, {"s2t": tiny_lists["s2t"]}, tmp_path / "first", *common, "train.encoder_cache_mb=8", shared)
    assert (tmp_path / "enc_cache.pt").is_file()
    caplog.clear()
    trainer = _train(tiny_config, {"s2t": tiny_lists["s2t"]}, tmp_path / "second", *common,
                     "train.encoder_cache_mb=8", shared)
    stats = trainer.engine.model.encoder_cache.stats()
    assert stats["misses"] == 0 and stats["hits"] == 16 and stats["entries"] == 8
    assert any("enc_cache.pt: 8 entries" in r.getMessage() for r in caplog.records)
    assert _losses(tmp_path / "second") == pytest.approx(_losses(tmp_path / "plain"), abs=1e-4)
    # another seed, another random encoder: the file is not used
    caplog.clear()
    trainer = _train(tiny_config, {"s2t": tiny_lists["s2t"]}, tmp_path / "other", *common,
                     "train.encoder_cache_mb=8", shared, "train.seed=7")
    assert trainer.engine.model.encoder_cache.stats()["misses"] == 8
    assert any("other encoder weights, not used" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="encoder_cache_file needs the cache on"):
        _train(tiny_config, {"s2t": tiny_lists["s2t"]}, tmp_path / "bad", *common, shared)
