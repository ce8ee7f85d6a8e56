"""Batch decoding of the upstream fake raw list: one line per key, resume, merge order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from osum_echat.bin.decode import main as decode_main
from osum_echat.generate.batch_decode import decode_job, merge

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_tokenizer, upstream_fake):
    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("dec")
    tiny_tokenizer.save_pretrained(str(d / "tok"))
    cfg = load_config(REPO / "conf" / "model" / "tiny.yaml")
    torch.manual_seed(0)
    save_checkpoint(build_model(cfg.model, apply_trainable=False), d / "model.pt")
    prefix = f"data.path_prefix_map={{'./common_utils/fake_data/': '{upstream_fake}/'}}"
    return d, [prefix, "generate.max_new_tokens=6", "generate.s2s.greedy=true"]


def _args(d, upstream_fake, out, *extra):
    return ["--config", str(REPO / "conf" / "model" / "tiny.yaml"), "--checkpoint", str(d / "model.pt"),
            "--tokenizer", str(d / "tok"), "--data_list", str(upstream_fake / "raw" / "data.list"),
            "--out_dir", str(out), "--device", "cpu", *extra]


def _keys(path):
    return [ln.split("\t", 1)[0].split(" ", 1)[0] for ln in Path(path).read_text(encoding="utf-8").splitlines()]


def test_decode_raw_list_and_resume(assets, upstream_fake, tmp_path):
    d, ov = assets
    out = tmp_path / "o"
    assert decode_main(_args(d, upstream_fake, out, "--batch_size", "4", *ov)) == 0
    want = [f"1023390_bed51684_{i}" for i in range(1, 11)]
    assert _keys(out / "text") == want and _keys(out / "ref") == want
    assert _keys(out / "codes") == want and _keys(out / "think") == want
    ref = (out / "ref").read_text(encoding="utf-8").splitlines()[0].split("\t")[1]
    assert ref.startswith("你好呀姐妹")
    for ln in (out / "codes").read_text().splitlines():
        assert all(0 <= int(c) < 4096 for c in ln.split()[1:])
    # simulate a kill: the last 3 lines are gone and a partial line is left behind
    text = out / "split" / "0" / "text"
    lines = text.read_text(encoding="utf-8").splitlines(keepends=True)
    text.write_text("".join(lines[:7]) + lines[7][:5], encoding="utf-8")
    from osum_echat.generate.echat import EChat

    bot = EChat.from_pretrained(str(d / "model.pt"), str(REPO / "conf" / "model" / "tiny.yaml"),
                                str(d / "tok"), "cpu", overrides=ov)
    assert decode_job(bot, str(upstream_fake / "raw" / "data.list"), out, batch_size=2) == 3
    assert merge(out, 1) == 10
    assert _keys(out / "text") == want


def test_two_jobs_merge_in_order(assets, upstream_fake, tmp_path):
    d, ov = assets
    out = tmp_path / "o2"
    for j in range(2):
        assert decode_main(_args(d, upstream_fake, out, "--nj", "2", "--job_id", str(j),
                                 "--task", "asr", *ov)) == 0
    assert decode_main(["--merge", "--nj", "2", "--out_dir", str(out)]) == 0
    assert _keys(out / "text") == [f"1023390_bed51684_{i}" for i in range(1, 11)]
    assert not (out / "codes").exists()  # ASR override: text only


def test_shell_script(assets, upstream_fake, tmp_path):
    d, ov = assets
    out = tmp_path / "o3"
    cmd = ["bash", str(REPO / "infer_with_shards_or_raw.sh"), "--nj", "1",
           *_args(d, upstream_fake, out, "--task", "t2t"), *ov, "generate.t2t.max_new_tokens=3"]
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr + res.stdout
    assert len(_keys(out / "text")) == 10
