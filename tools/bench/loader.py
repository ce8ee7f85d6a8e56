"""Loader throughput on an upstream-format shard, measured as upstream's loader baseline
(docs/upstream_compat.md, "Baselines").

The shard is generated (``tests/fixtures/make_upstream_format.py``) with the shape of upstream's
sample shard: 10 utterances x 10.96 s of synthesized speech-like audio, task
``<S2TCHAT> <TEXT2TOKEN> <THINK>``, the same texts, 421 codes. It is copied under 12 names; the
list has each copy twice (upstream ``multi_num: 2``), so one pass is 240 utterances / 2,630 s of
audio. Stages as upstream's reference config: tokenize (real Qwen
BPE when dashscope is installed), filter, resample, log-mel, SpecAug + SpecSub, shuffle 1500,
sort 500, dynamic batching (a budget giving batches of 2, like upstream's), collate. A fresh
loader per pass; one untimed warm-up pass, then ``--passes`` timed passes (from the first
``next()`` to the end of the stream). Prints one JSON object.

    python tools/bench/loader.py [--passes 3] [--workers 0,1,2] [--threads N] [--stages] [--fake DIR]
                                 [--stream K] [--features_on_device]

``--fake DIR``: read ``DIR/shard/shards_000000000.tar`` (any upstream-format folder) instead of
generating one. ``--stream K``: also one loader over K passes' worth of the list (K x 240
utterances), timed as a whole: the steady state of a training run, whose workers live for the
whole stream (a fresh loader per 240-utterance pass pays the workers' start and the shuffle
buffer's drain every pass). ``--features_on_device``: the loader yields waveforms
(``data.features_on_device``); the JSON adds what ``Batch.featurize`` (the model's side) costs
per utterance when the device is this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))

from make_upstream_format import write_upstream_format  # noqa: E402

from osum_echat.data.config import DataConfig  # noqa: E402
from osum_echat.data.loader import build_loader  # noqa: E402


def _tokenizer():
    from osum_echat.text.build_tokenizer import (
        build_qwen_tokenizer,
        find_qwen_tiktoken,
        train_bpe_tokenizer,
    )

    if find_qwen_tiktoken() is not None:
        return build_qwen_tokenizer(), "qwen2-bpe"
    return train_bpe_tokenizer(["你好呀姐妹 hello"] * 10, vocab_size=500), "tiny-bpe"


def _pass(cfg: DataConfig, lst: str, tok) -> dict:
    loader = build_loader(cfg, {"s2s": lst}, tok, text_vocab_size=151936, train=True)
    c0 = _cpu_s()
    t0 = time.perf_counter()
    utts = batches = frames = positions = 0
    first = None
    for b in loader:
        if first is None:
            first = time.perf_counter() - t0
        batches += 1
        utts += b.num_examples
        frames += int(b.feats_lengths.sum())
        positions += sum(e - st for _, st, e in b.spans)
    dt = time.perf_counter() - t0
    drops = loader.drops.total()
    del loader
    return {"time_s": dt, "cpu_s": _cpu_s() - c0, "ttfb_s": first, "utts": utts, "batches": batches, "audio_s": frames / 100,
            "positions": positions,
            "drops": drops}


def _stream(cfg: DataConfig, lst: str, tok) -> dict:
    """One loader over the whole (long) list: utterances per second and per CPU-second."""
    r = _pass(cfg, lst, tok)
    return {"utts": r["utts"], "time_s": round(r["time_s"], 3), "utt_per_s": round(r["utts"] / r["time_s"], 1),
            "cpu_s": round(r["cpu_s"], 3), "utt_per_cpu_s": round(r["utts"] / r["cpu_s"], 1),
            "drops": r["drops"]}


def _featurize_cost(cfg: DataConfig, lst: str, tok, reps: int = 3) -> dict:
    """ms per utterance of ``Batch.featurize`` (log-mel of the batch in one call + the
    augmentation plans) on this CPU, minimum over ``reps`` passes of the loader's batches."""
    import torch

    batches = list(build_loader(cfg, {"s2s": lst}, tok, text_vocab_size=151936, train=True))
    n = sum(b.num_examples for b in batches)
    best = float("inf")
    outer = torch.get_num_threads()
    torch.set_num_threads(cfg.pipeline_threads or outer)
    for _ in range(reps):
        t0 = time.perf_counter()
        for b in batches:
            b.featurize()
        best = min(best, time.perf_counter() - t0)
    torch.set_num_threads(outer)
    return {"featurize_ms_per_utt_min": round(best / n * 1000, 3), "utts": n}


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its reaped children (the workers are
    joined when their pass ends): much less sensitive to a busy machine than wall time."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _stage_breakdown(tar: str, tok, reps: int = 5) -> dict:
    """Minimum time per stage over ``reps`` runs of one 240-utterance pass, each stage run
    to completion before the next (robust to machine noise; ms per utterance)."""
    import random

    from osum_echat.data import batching, pipeline
    from osum_echat.data.loader import build_renderer
    from osum_echat.data.sources import iter_unit

    cfg = DataConfig()
    cfg.batch.max_tokens_in_batch = 2220
    cfg.batch.batch_size = 0
    renderer = build_renderer(cfg, tok)
    import torch

    outer = torch.get_num_threads()
    torch.set_num_threads(cfg.pipeline_threads or outer)  # as the loader runs the stages
    names = ["tokenize", "decode", "resample", "speed_perturb", "filter_audio", "features", "augment"]
    best: dict[str, float] = {}
    for _ in range(reps):
        ctx = pipeline.StageContext(cfg=cfg, renderer=renderer)
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        items = [x for i in range(24) for x in iter_unit(f"-|{tar}", str(i), {}, ctx.drops)]
        t["source"] = time.perf_counter() - t0
        for name in names:
            t0 = time.perf_counter()
            items = list(getattr(pipeline, name)(iter(items), ctx))
            t[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        groups = list(batching.batch(batching.sort(batching.shuffle(iter(items), random.Random(0), 1500), 500),
                                     cfg.batch))
        t["shuffle_sort_batch"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for g in groups:
            batching.collate_samples(g, 151936, 4097, None)
        t["collate"] = time.perf_counter() - t0
        for k, v in t.items():
            best[k] = min(best.get(k, v), v)
    torch.set_num_threads(outer)
    n = len(items)
    total = sum(best.values())
    return {"ms_per_utt": {k: round(v / n * 1000, 3) for k, v in best.items()},
            "sum_of_minima_s": round(total, 3), "utt_per_s_from_minima": round(n / total, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--fake", default=None, help="an upstream-format folder (default: generate one)")
    p.add_argument("--stages", action="store_true", help="also time each stage separately")
    p.add_argument("--threads", type=int, default=0, help="torch threads of the main process (0 = default)")
    p.add_argument("--stream", type=int, default=0, help="K > 0: also one loader over K passes' worth")
    p.add_argument("--features_on_device", action="store_true",
                   help="the loader yields waveforms; the model computes the features (data.features_on_device)")
    a = p.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    tmp = tempfile.mkdtemp(prefix="bench_loader_")
    try:
        fake = a.fake or str(write_upstream_format(os.path.join(tmp, "upstream_format")))
        tars = []
        for i in range(12):
            dst = os.path.join(tmp, f"copy_{i:02d}.tar")
            shutil.copy(os.path.join(fake, "shard/shards_000000000.tar"), dst)
            tars.append(dst)
        lst = os.path.join(tmp, "list.txt")
        with open(lst, "w") as f:
            f.writelines(f"-|{t}\n" for t in tars * 2)  # multi_num 2
        long_lst = os.path.join(tmp, "list_stream.txt")
        with open(long_lst, "w") as f:
            f.writelines(f"-|{t}\n" for t in tars * 2 * max(1, a.stream))
        tok, tok_name = _tokenizer()
        results, stream = {}, {}

        def config(w: int) -> DataConfig:
            cfg = DataConfig(num_workers=w, prefetch_factor=50 if w else 4, on_exhaust="drop",
                             drop_log_interval=0, features_on_device=a.features_on_device)
            cfg.batch.max_tokens_in_batch = 2220  # upstream s2s-think cap 0.6 x 3700 -> pairs
            cfg.batch.batch_size = 0
            return cfg

        for w in [int(x) for x in a.workers.split(",")]:
            cfg = config(w)
            _pass(cfg, lst, tok)  # warm-up (first-call costs, like upstream's "warm" rows)
            runs = [_pass(cfg, lst, tok) for _ in range(a.passes)]
            times = [r["time_s"] for r in runs]
            med = statistics.median(times)
            results[f"workers_{w}"] = {
                "utts_per_pass": runs[0]["utts"], "batches_per_pass": runs[0]["batches"],
                "audio_s_per_pass": runs[0]["audio_s"], "drops": runs[0]["drops"],
                "pass_time_s_min": round(min(times), 3), "pass_time_s_median": round(med, 3),
                "ttfb_s_median": round(statistics.median(r["ttfb_s"] for r in runs), 3),
                "utt_per_s_median": round(runs[0]["utts"] / med, 1),
                "utt_per_s_best": round(runs[0]["utts"] / min(times), 1),
                "audio_s_per_s_median": round(runs[0]["audio_s"] / med, 1),
                "llm_positions_per_s_median": round(runs[0]["positions"] / med),
                "per_worker_utt_per_s": round(runs[0]["utts"] / med / max(1, w), 1),
                "cpu_s_per_pass_median": round(statistics.median(r["cpu_s"] for r in runs), 3),
                "utt_per_cpu_s_median": round(runs[0]["utts"] / statistics.median(r["cpu_s"] for r in runs), 1),
            }
        if a.stream:
            for w in [int(x) for x in a.workers.split(",")]:
                stream[f"workers_{w}"] = _stream(config(w), long_lst, tok)
        import torch

        out = {"bench": "loader",
               "data": ("generated upstream-format shard (10 x 10.96 s, 421 codes) x12 x2 (240 utts)"
                        if not a.fake else f"{a.fake}/shard x12 x2"),
               "tokenizer": tok_name, "torch_threads": torch.get_num_threads(),
               "load_avg_1min": os.getloadavg()[0],
               "features_on_device": a.features_on_device,
               "upstream_utt_per_s_warm_single_process": 184.4, "results": results}
        if stream:
            out["stream"] = {"passes": a.stream, **stream}
        if a.features_on_device:
            out["model_side_featurize"] = _featurize_cost(config(0), lst, tok)
        if a.stages:
            out["stages_single_process"] = _stage_breakdown(tars[0], tok)
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
