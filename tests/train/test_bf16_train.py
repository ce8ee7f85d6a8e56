"""``bin.train`` with ``train.dtype=bf16`` on speech-input families (float32 features, bf16
autocast over fp32 weights): finite losses, checkpoints in fp32."""

from __future__ import annotations

import json
import math

import torch

from osum_echat.bin import train as train_cli


def test_bf16_training_with_speech_input(tiny_config, tiny_lists, tmp_path):
    md = tmp_path / "exp"
    train_cli.run(["--config", tiny_config, "--model_dir", str(md), "--device", "cpu",
                   "--train_data_s2t", tiny_lists["s2t"], "--train_data_s2s", tiny_lists["s2s"],
                   "--cv_data", tiny_lists["cv"], "train.dtype=bf16", "train.max_steps=2",
                   "train.save_interval=2", "train.log_interval=1"])
    recs = [json.loads(line) for line in (md / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    cv = [r["cv"]["all"]["loss"] for r in recs if "cv" in r]
    assert cv and math.isfinite(cv[-1])
    sd = torch.load(md / "step_2.pt", weights_only=True)
    assert sd["encoder.embed.conv.0.weight"].dtype == torch.float32


def test_features_on_device_trains_like_loader_features(tiny_config, tiny_lists, tmp_path):
    """``data.features_on_device=true``: the model computes the features (float32 inside the
    bf16 autocast region too) and the run logs the same losses as with the loader's features."""
    losses = {}
    for dtype in ("fp32", "bf16"):
        for on_device in ("false", "true"):
            md = tmp_path / f"exp_{dtype}_{on_device}"
            train_cli.run(["--config", tiny_config, "--model_dir", str(md), "--device", "cpu",
                           "--train_data_s2t", tiny_lists["s2t"], "--train_data_s2s", tiny_lists["s2s"],
                           f"train.dtype={dtype}", f"data.features_on_device={on_device}", "train.max_steps=3",
                           "train.save_interval=100", "train.log_interval=1"])
            recs = [json.loads(line) for line in (md / "metrics.jsonl").read_text().splitlines()]
            losses[dtype, on_device] = [r["loss"] for r in recs if "loss" in r]
    for dtype, tol in (("fp32", 1e-4), ("bf16", 2e-2)):
        host, dev = losses[dtype, "false"], losses[dtype, "true"]
        assert len(host) == len(dev) == 3
        assert all(abs(a - b) <= tol * abs(a) for a, b in zip(host, dev)), (dtype, host, dev)
