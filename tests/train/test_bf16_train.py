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
