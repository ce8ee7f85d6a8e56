"""Buffer and batch stages: shuffle, sort, bucketed batching (static / dynamic / pack),
collate. All buffers flush at the end of the stream: no leftover is ever lost."""

from __future__ import annotations

import random
from collections.abc import Iterator

from osum_echat.data.config import BatchConfig
from osum_echat.data.sample import Sample

Samples = Iterator[Sample]


def shuffle(samples: Samples, rng: random.Random, size: int) -> Samples:
    """Fill a buffer of ``size`` samples, shuffle it, emit it; the rest at the end."""
    buf: list[Sample] = []
    for s in samples:
        buf.append(s)
        if len(buf) >= size:
            rng.shuffle(buf)
            yield from buf
            buf = []
    rng.shuffle(buf)
    yield from buf


def sort(samples: Samples, size: int) -> Samples:
    """Sort buffers of ``size`` samples by LLM length (ascending; stable)."""
    buf: list[Sample] = []
    for s in samples:
        buf.append(s)
        if len(buf) >= size:
            buf.sort(key=lambda x: x.length)
            yield from buf
            buf = []
    buf.sort(key=lambda x: x.length)
    yield from buf


def bucket_key(s: Sample, by: str) -> str:
    return s.spec.family if by == "family" else s.spec.output_type


class _Bucket:
    __slots__ = ("items", "longest", "total")

    def __init__(self) -> None:
        self.items: list[Sample] = []
        self.longest = 0
        self.total = 0

    def add(self, s: Sample) -> None:
        self.items.append(s)
        self.longest = max(self.longest, s.length)
        self.total += s.length


def _full_with(b: _Bucket, s: Sample, conf: BatchConfig, budget: float) -> bool:
    """Would adding ``s`` break the bucket's limits?"""
    n = len(b.items) + 1
    if conf.batch_type == "static":
        return len(b.items) >= conf.batch_size
    if conf.batch_size and n > conf.batch_size:
        return True
    if conf.batch_type == "dynamic":
        return max(b.longest, s.length) * n > budget
    return b.total + s.length > budget  # pack


def batch(samples: Samples, conf: BatchConfig) -> Iterator[list[Sample]]:
    """Group samples into batches, one open bucket per output type (or family).

    static: ``batch_size`` samples; dynamic: rows x longest <= budget; pack: sum of lengths
    <= budget (rows are then packed by collate). Budget = ``max_tokens_in_batch`` scaled by
    ``bucket_scale[key]``. A single over-budget sample forms its own batch. At the end every
    non-empty bucket is flushed, in the order the buckets were opened.
    """
    buckets: dict[str, _Bucket] = {}
    for s in samples:
        key = bucket_key(s, conf.bucket_by)
        b = buckets.get(key)
        if b is None:
            b = buckets[key] = _Bucket()
        budget = conf.max_tokens_in_batch * conf.bucket_scale.get(key, 1.0)
        if b.items and _full_with(b, s, conf, budget):
            yield b.items
            b = buckets[key] = _Bucket()
        b.add(s)
    for b in buckets.values():
        if b.items:
            yield b.items


def to_examples(items: list[Sample]):
    """Samples -> model Examples (segments, key, task, family)."""
    from osum_echat.model.batch import Example

    return [Example(segments=s.segments, key=s.key, task=s.spec.name, family=s.spec.family)
            for s in items]


def collate_samples(items: list[Sample], text_vocab_size: int, speech_token_num: int,
                    pack_max_tokens: int | None):
    """Samples -> :class:`osum_echat.model.batch.Batch`."""
    from osum_echat.model.batch import collate

    return collate(to_examples(items), text_vocab_size, speech_token_num,
                   pack_max_tokens=pack_max_tokens)
