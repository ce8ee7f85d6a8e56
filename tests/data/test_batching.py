"""Bucketed batching: nothing lost at the end, budgets respected, packing fits rows."""

from __future__ import annotations

import random

import torch

from osum_echat.data import batching
from osum_echat.data.config import BatchConfig
from osum_echat.data.sample import Sample
from osum_echat.data.tasks import get_spec
from osum_echat.model.batch import SpeechInSegment, TextSegment, example_length

TASKS = ["<TRANSCRIBE>", "<S2TCHAT>", "<TEXT2TEXT>", "<S2TCHAT> <TEXT2TOKEN>"]


def _samples(n=200, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = Sample(key=f"k{i}", task=rng.choice(TASKS))
        s.spec = get_spec(s.task)
        s.segments = [TextSegment([1] * rng.randint(5, 40)), SpeechInSegment(torch.zeros(rng.randint(8, 400), 80)),
                      TextSegment([2] * rng.randint(1, 30), supervised=True)]
        s.length = example_length(batching.to_examples([s])[0])
        out.append(s)
    return out


def test_dynamic_never_loses_leftovers():
    samples = _samples()
    conf = BatchConfig(batch_type="dynamic", max_tokens_in_batch=700, batch_size=0)
    batches = list(batching.batch(iter(samples), conf))
    keys = [s.key for b in batches for s in b]
    assert sorted(keys) == sorted(s.key for s in samples)  # every sample exactly once
    for b in batches:
        assert len({s.spec.output_type for s in b}) == 1  # one bucket per output type
        assert len(b) == 1 or len(b) * max(s.length for s in b) <= 700
    # last flush: one leftover batch per bucket
    assert len({b[0].spec.output_type for b in batches[-4:]}) == 4


def test_static_and_bucket_by_family():
    samples = _samples(50)
    conf = BatchConfig(batch_type="static", batch_size=4, bucket_by="family")
    batches = list(batching.batch(iter(samples), conf))
    assert sum(len(b) for b in batches) == 50
    assert all(len(b) <= 4 and len({s.spec.family for s in b}) == 1 for b in batches)


def test_pack_respects_budget():
    samples = _samples(120, seed=1)
    conf = BatchConfig(batch_type="pack", max_tokens_in_batch=1000, pack_max_tokens=256, batch_size=0)
    total = 0
    for items in batching.batch(iter(samples), conf):
        assert len(items) == 1 or sum(s.length for s in items) <= 1000
        b = batching.collate_samples(items, text_vocab_size=100, speech_token_num=4097, pack_max_tokens=256)
        total += b.num_examples
        assert b.input_ids.shape[1] <= max(256, max(s.length for s in items))
        for row in range(b.input_ids.shape[0]):
            used = sum(e - s for r, s, e in b.spans if r == row)
            assert used <= 256 or sum(1 for r, _, _ in b.spans if r == row) == 1
    assert total == 120


def test_shuffle_and_sort_flush_everything():
    samples = _samples(37)
    out = list(batching.sort(batching.shuffle(iter(samples), random.Random(0), 10), 8))
    assert sorted(s.key for s in out) == sorted(s.key for s in samples)
    for i in range(0, 32, 8):
        chunk = [s.length for s in out[i:i + 8]]
        assert chunk == sorted(chunk)


def test_pack_end_to_end_fake_data(tiny_tok, upstream_fake):
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from data_helpers import data_cfg, run_loader

    cfg = data_cfg(batch__batch_type="pack", batch__pack_max_tokens=4096, batch__max_tokens_in_batch=8192,
                   batch__batch_size=0, filter__max_seq_len=4096)  # tiny BPE: ~1337 positions each
    batches, ld = run_loader(cfg, {"all": str(upstream_fake / "raw/data.list")}, tiny_tok)
    assert sum(b.num_examples for b in batches) == 10 and ld.drops.total() == 0
    for b in batches:
        assert b.input_ids.shape[1] <= 4096
        assert b.input_ids.shape[0] < b.num_examples or b.num_examples == 1  # rows hold several
        assert int(b.audio_slots.shape[0]) == b.num_examples
