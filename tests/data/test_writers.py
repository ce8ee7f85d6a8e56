"""make_shards (resumable), make_combine (forced task, subset), YAML list expansion (seeded)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import os
import subprocess
import sys

import yaml
from data_helpers import REPO, fake_prefix_map, make_wav, write_jsonl

from osum_echat.data.sources import read_list
from osum_echat.data.writers import (
    expand_data_lists,
    make_combine,
    make_shards,
    tar_metadata,
)


def test_make_shards_resumable(tmp_path):
    recs = [{"key": f"k{i}", "wav": make_wav(tmp_path / f"{i}.wav", 0.3, seed=i), "txt": "hi",
             "txt_1": "earlier reply", "wav_1": str(tmp_path / f"{i}.wav"),
             "extra": {"duration": 0.3, "speech_token": [1, 2]}} for i in range(5)]
    raw = write_jsonl(tmp_path / "raw.jsonl", recs)
    tars = make_shards([raw], str(tmp_path / "out"), num_per_tar=2, nj=2)
    assert len(tars) == 3 and all(os.path.exists(t + ".finished") for t in tars)
    meta = tar_metadata(tars[0])
    assert meta[0]["txt_1"] == "earlier reply" and "duration" not in meta[0]["extra"]
    mtime = os.path.getmtime(tars[0])
    os.remove(tars[1] + ".finished")
    make_shards([raw], str(tmp_path / "out"), num_per_tar=2)
    assert os.path.getmtime(tars[0]) == mtime  # finished tars are not rewritten
    assert read_list(str(tmp_path / "out/shards_list.txt")) == tars


def test_make_combine_forced_task_and_subset(tmp_path, upstream_fake):
    fake = upstream_fake
    shard_list = write_jsonl(tmp_path / "l.txt", [f"{fake}/shard/shards_000000000.tar"])
    keep = {"1023390_bed51684_1", "1023390_bed51684_2"}
    comb = make_combine(shard_list, str(tmp_path / "c"), task="<TRANSCRIBE> <EMOTION>",
                        relabel=lambda r: r if r["key"] in keep else None)
    lines = read_list(comb)
    assert lines == [f"{tmp_path}/c/shards_000000000.list|{fake}/shard/shards_000000000.tar"]
    metas = [yaml.safe_load(x) for x in (tmp_path / "c/shards_000000000.list").read_text("utf-8").splitlines()]
    assert {m["key"] for m in metas} == keep and {m["task"] for m in metas} == {"<TRANSCRIBE> <EMOTION>"}
    assert all(m["extra"]["q_txt"] == m["extra"]["question"] for m in metas)


def _yaml(tmp_path, weights, fake):
    lists = {}
    for name in ("a", "b"):
        lists[name] = write_jsonl(tmp_path / f"{name}_shards_list.txt", [f"/x/{name}/{i}.tar" for i in range(10)])
    spec = {"a": {"path": lists["a"], "weight": weights[0], "family": "s2t"},
            "b": {"path": lists["b"], "weight": weights[1], "family": "s2t"},
            "c": {"path": str(fake / "combine/combines_list.txt"), "weight": 1, "family": "s2s"}}
    p = tmp_path / "data.yaml"
    p.write_text(yaml.safe_dump(spec))
    return str(p)


def test_expand_data_lists_seeded(tmp_path, upstream_fake):
    fake, pmap = upstream_fake, fake_prefix_map()
    y = _yaml(tmp_path, [2, 0.3], fake)
    one = expand_data_lists(y, seed=3, prefix_map=pmap)
    two = expand_data_lists(y, seed=3, prefix_map=pmap)
    assert one == two
    assert one != expand_data_lists(y, seed=4, prefix_map=pmap)
    assert len(one["s2t"]) == 20 + 3 and all(x.startswith("-|/x/") for x in one["s2t"])
    assert sum(x.startswith("-|/x/a/") for x in one["s2t"]) == 20
    assert one["s2s"] == [f"{fake}/combine/shards_000000000.list|{fake}/shard/shards_000000000.tar"]


def test_cli_expand(tmp_path, upstream_fake):
    y = _yaml(tmp_path, [1, 1], upstream_fake)
    out = subprocess.run([sys.executable, str(REPO / "common_utils/expand_data_lists.py"), y,
                          str(tmp_path / "lists/train"), "--seed", "1"] +
                         [a for k, v in fake_prefix_map().items() for a in ("--path_prefix_map", f"{k}={v}")],
                         capture_output=True, text=True, check=True)
    paths = out.stdout.split()
    assert sorted(os.path.basename(p) for p in paths) == ["train.s2s.list", "train.s2t.list"]
