#!/usr/bin/env python3
"""Token2wav benchmark: real-time factor and first-chunk latency; prints JSON.

    python tools/bench/token2wav.py                      # tiny random config on CPU
    python tools/bench/token2wav.py --release --device auto --dtype bf16   # release sizes (GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from osum_echat.device import resolve_device, synchronize  # noqa: E402
from osum_echat.token2wav.config import release_config, tiny_config  # noqa: E402
from osum_echat.token2wav.model import Token2Wav  # noqa: E402
from osum_echat.token2wav.streaming import StreamConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--release", action="store_true", help="release-size random weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--codes", type=int, default=250, help="codes per utterance (250 = 10 s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = release_config() if args.release else tiny_config()
    t2w = Token2Wav.from_config(cfg, device=device, dtype=args.dtype)
    codes = list(np.random.RandomState(0).randint(0, cfg.flow.vocab_size, args.codes))
    t2w.synthesize(codes[:50])  # warm-up
    times = []
    for _ in range(args.repeats):
        synchronize(device)
        t0 = time.perf_counter()
        wav, sr = t2w.synthesize(codes)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    audio_s = len(wav) / sr
    scfg = StreamConfig()
    firsts, stream_times = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        first = None
        n = 0
        for chunk in t2w.stream(iter(codes), config=scfg):  # all codes available: measures compute only
            if first is None:
                first = time.perf_counter() - t0
            n += len(chunk)
        stream_times.append(time.perf_counter() - t0)
        firsts.append(first)
    print(json.dumps({
        "bench": "token2wav",
        "config": "release" if args.release else "tiny",
        "device": str(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "codes": len(codes),
        "audio_s": round(audio_s, 3),
        "synth_s_median": round(float(np.median(times)), 4),
        "rtf": round(float(np.median(times)) / audio_s, 4),
        "stream_rtf": round(float(np.median(stream_times)) / audio_s, 4),
        "first_chunk_latency_s": round(float(np.median(firsts)), 4),
        "first_chunk_codes": scfg.first_hop_tokens + scfg.lookahead_tokens,
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
