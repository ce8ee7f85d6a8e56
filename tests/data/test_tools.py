"""inspect_data CLI, conf/data YAMLs, tar format variants."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import io
import tarfile
from pathlib import Path

import yaml
from data_helpers import (
    REPO,
    data_cfg,
    fake_prefix_map,
    make_wav,
    run_loader,
    write_jsonl,
)

from osum_echat.config import from_dict
from osum_echat.data.config import DataConfig


def test_conf_data_yamls_load():
    for f in (REPO / "conf/data").glob("*.yaml"):
        data = yaml.safe_load(f.read_text())
        if "data" in data:
            from_dict(DataConfig, data["data"])


def test_inspect_data(tiny_tok, tmp_path, capsys, upstream_fake):
    from osum_echat.bin.inspect_data import main

    tiny_tok.save_pretrained(str(tmp_path / "tok"))
    args = ["--list", str(upstream_fake / "raw/data.list"), "-n", "1", "--tokenizer", str(tmp_path / "tok")]
    for k, v in fake_prefix_map().items():
        args += ["--path_prefix_map", f"{k}={v}"]
    main(args)
    out = capsys.readouterr().out
    assert "[speech 1096 frames]" in out and "[codes 423]" in out and "<think>" in out
    assert "kept 10 examples" in out and "drops: none" in out


def _write_tar(path, members, mode="w", fmt=tarfile.GNU_FORMAT):
    with tarfile.open(path, mode, format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_tar_variants(tiny_tok, tmp_path):
    wav = Path(make_wav(tmp_path / "a.wav", 0.5)).read_bytes()
    long_key = "dir/" + "k" * 120 + ".v1"  # > 100 chars, with a dot in the key
    members = [(f"{long_key}.txt", b"hello"), (f"{long_key}.flac", wav), (f"{long_key}.task", b"<TRANSCRIBE>")]
    tars = [_write_tar(tmp_path / "gnu.tar", members),
            _write_tar(tmp_path / "pax.tar", members, fmt=tarfile.PAX_FORMAT),
            _write_tar(tmp_path / "gz.tar.gz", members, mode="w:gz")]
    lst = write_jsonl(tmp_path / "l.txt", [f"-|{t}" for t in tars])
    batches, ld = run_loader(data_cfg(), {"all": lst}, tiny_tok)
    assert [k for b in batches for k in b.keys] == [long_key] * 3 and ld.drops.total() == 0
