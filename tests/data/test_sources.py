"""The three upstream formats read unchanged; raw -> shard -> combine round trip."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from data_helpers import data_cfg, make_wav, run_loader, same_batch, write_jsonl

from osum_echat.data.drops import DropCounter
from osum_echat.data.sources import iter_unit, read_list
from osum_echat.data.writers import make_combine, make_shards

KEYS = {f"1023390_bed51684_{i}" for i in range(1, 11)}


def test_generated_upstream_layout(upstream_fake):
    """The fixture writes upstream's layout: the maker's 9 members per key in its order, combine
    metadata with 'tas_tag' (no 'task'), relative upstream-style paths, a 24 kHz raw wav."""
    import json
    import tarfile

    import soundfile as sf

    members = ["txt", "wav", "task", "lang", "speaker", "emotion", "gender", "duration", "extra"]
    with tarfile.open(upstream_fake / "shard/shards_000000000.tar") as tar:
        assert tar.getnames() == [f"1023390_bed51684_{i}.{m}" for i in range(1, 11) for m in members]
    comb = [json.loads(x) for x in (upstream_fake / "combine/shards_000000000.list").read_text("utf-8").splitlines()]
    assert len(comb) == 10 and all(r["tas_tag"] == "<TRANSCRIBE>" and "task" not in r for r in comb)
    assert (upstream_fake / "combine/combines_tar_root.txt").read_text().strip() == "common_utils/fake_data/shard"
    raw = json.loads((upstream_fake / "raw/data.list").read_text("utf-8").splitlines()[0])
    assert raw["wav"] == "./common_utils/fake_data/raw/wav/random.wav"
    info = sf.info(str(upstream_fake / "raw/wav/random.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (24000, 1, 263040, "PCM_16")


def _samples(line, cfg):
    drops = DropCounter()
    return list(iter_unit(line, "0", cfg.path_prefix_map, drops)), drops


def test_raw_fake_data(tiny_tok, upstream_fake):
    cfg = data_cfg()
    batches, ld = run_loader(cfg, {"all": str(upstream_fake / "raw/data.list")}, tiny_tok)
    keys = [k for b in batches for k in b.keys]
    assert set(keys) == KEYS and len(keys) == 10
    assert {t for b in batches for t in b.tasks} == {"<S2TCHAT> <TEXT2TOKEN> <THINK>"}
    assert ld.drops.total() == 0
    # 24 kHz source resampled to 16 kHz: 10.96 s -> 1096 frames
    assert batches[0].feats.shape[1:] == (1096, 80)


def test_shard_fake_data(tiny_tok, tmp_path, upstream_fake):
    cfg = data_cfg()
    tar = str(upstream_fake / "shard/shards_000000000.tar")
    lst = write_jsonl(tmp_path / "l.txt", [f"-|{tar}"])
    batches, ld = run_loader(cfg, {"all": lst}, tiny_tok)
    assert {k for b in batches for k in b.keys} == KEYS
    assert ld.drops.total() == 0
    assert read_list(tar) == [tar]
    samples, _ = _samples(tar, cfg)  # a plain tar path too
    assert len(samples) == 10 and all(s.audio.suffix == "wav" for s in samples)
    assert len(samples[0].extra["speech_token"]) == 421


def test_combine_fake_data_tas_tag_alias(tiny_tok, upstream_fake):
    cfg = data_cfg()
    lines = read_list(str(upstream_fake / "combine/combines_list.txt"), cfg.path_prefix_map)
    assert lines[0].endswith("shard/shards_000000000.tar") and "|" in lines[0]
    batches, ld = run_loader(cfg, {"all": str(upstream_fake / "combine/combines_list.txt")}, tiny_tok)
    assert {k for b in batches for k in b.keys} == KEYS
    assert {t for b in batches for t in b.tasks} == {"<TRANSCRIBE>"}  # from 'tas_tag'
    assert ld.drops.total() == 0


def test_round_trip_raw_shard_combine(tiny_tok, tmp_path):
    recs = []
    for i in range(5):
        recs.append({"key": f"u.{i}", "wav": make_wav(tmp_path / f"{i}.wav", 0.4 + 0.1 * i, seed=i),
                     "txt": f"hello world {i}", "task": "<TRANSCRIBE>", "extra": {"dataset": "t"}})
    recs.append({"key": "t2s.0", "txt": "hello world", "task": "<TEXT2TOKEN>",
                 "extra": {"speech_token": list(range(40))}})
    raw = write_jsonl(tmp_path / "raw.jsonl", recs)
    tars = make_shards([raw], str(tmp_path / "shards"), num_per_tar=4)
    assert len(tars) == 2 and (tmp_path / "shards/shards_list.txt").is_file()
    comb = make_combine(str(tmp_path / "shards/shards_list.txt"), str(tmp_path / "comb"))
    cfg = data_cfg(batch__sort=False, batch__batch_type="static", batch__batch_size=1)
    outs = [run_loader(cfg, {"all": p}, tiny_tok)[0]
            for p in (raw, str(tmp_path / "shards/shards_list.txt"), comb)]
    assert [b.keys for b in outs[0]] == [b.keys for b in outs[1]] == [b.keys for b in outs[2]]
    for a, b, c in zip(*outs):
        assert same_batch(a, b) and same_batch(b, c)
    assert outs[0][-1].tasks == ["<TEXT2TOKEN>"] and outs[0][-1].feats.numel() == 0  # no audio


def test_multichannel_and_segment(tiny_tok, tmp_path):
    import numpy as np
    import soundfile as sf

    stereo = np.random.default_rng(0).standard_normal((16000, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "st.flac", stereo, 16000)
    rec = {"key": "s", "wav": str(tmp_path / "st.flac"), "txt": "hi", "start": 0.25, "end": 0.75}
    batches, _ = run_loader(data_cfg(), {"all": write_jsonl(tmp_path / "r.jsonl", [rec])}, tiny_tok)
    assert batches[0].feats.shape[1] == 50
    assert torch.isfinite(batches[0].feats).all()
