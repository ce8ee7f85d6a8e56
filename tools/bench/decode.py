"""Decode latency benchmark: greedy S2S, 32 new tokens, ``<|im_end|>`` forced as token #4.

Same protocol as upstream's decode baseline (docs/upstream_compat.md, "Baselines"): tokens 0-4 in the text phase (``lm_head``, full
151,936 vocabulary), tokens 5-31 in the speech phase (the first one is the forced opening
boundary), a 1.37 s input clip (seeded noise), fp32. TTFT runs from just before the prompt is
built (speech features ready) to the first chosen token; ms/token is the mean interval between
consecutive tokens (31 intervals), also split by phase.

    python tools/bench/decode.py                      # tiny model, full vocab, CPU, fp32
    python tools/bench/decode.py --release --device auto --dtype bf16   # release-size random weights

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def load_tokenizer(kind: str = "slim"):
    from osum_echat.text.build_tokenizer import (
        build_qwen_slim_tokenizer,
        build_qwen_tokenizer,
        find_qwen_tiktoken,
        train_bpe_tokenizer,
    )

    if find_qwen_tiktoken() is not None:
        if kind == "slim":  # what inference loads by default (text.slim_tokenizer)
            return build_qwen_slim_tokenizer(), "qwen2 slim (tiktoken, dashscope qwen.tiktoken)"
        return build_qwen_tokenizer(), "qwen2 (dashscope qwen.tiktoken)"
    corpus = ["hello world", "今天天气真好", "年龄为:<CHILD><ADULT><OLD>"] * 5
    return train_bpe_tokenizer(corpus, vocab_size=300), "tiny BPE (qwen.tiktoken not installed)"


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM), MB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--release", action="store_true", help="release-size model (random weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--new_tokens", type=int, default=32)
    p.add_argument("--clip_s", type=float, default=1.37)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokenizer", choices=("slim", "hf"), default="slim",
                   help="slim: the tiktoken tokenizer inference loads; hf: the HF fast tokenizer")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from osum_echat.config import load_config
    from osum_echat.device import parse_dtype, resolve_device, synchronize
    from osum_echat.generate.echat import EChat
    from osum_echat.model.build import build_model

    device, dtype = resolve_device(args.device), parse_dtype(args.dtype)
    cfg_path = REPO / "conf/model" / ("osum_echat_3b.yaml" if args.release else "tiny.yaml")
    cfg = load_config(cfg_path, ["model.llm.vocab_size=151936", "generate.s2s.greedy=true",
                                 f"generate.max_new_tokens={args.new_tokens}"])
    tok, tok_name = load_tokenizer(args.tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(cfg.model, apply_trainable=False)
    model = model.to(dtype=dtype).eval()
    bot = EChat(model, tok, cfg)
    im_end, boundary = bot.decoder.ids.im_end, bot.decoder.boundary

    def protocol(state, logits):
        if state.phase == "text":
            out = logits.clone()
            if len(state.text_ids) == 4:
                out = torch.full_like(logits, float("-inf"))
                out[im_end] = 0.0
            else:
                out[im_end] = float("-inf")
            return out
        if state.boundaries >= 1:  # keep speech going until the token budget
            logits = logits.clone()
            logits[boundary] = float("-inf")
        return logits

    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(int(args.clip_s * 16000), generator=g)
    sample = bot.sample("s2s", wav)

    def one_call():
        synchronize(device)
        t0 = time.perf_counter()
        req = bot.request(sample)
        stamps, phases, timings = [], [], {}
        for step in bot.decoder.steps([req], processors=[protocol], timings=timings):
            synchronize(device)
            stamps.append(time.perf_counter())
            phases.append(step[0][2])
        return t0, stamps, phases, timings

    cold = one_call()
    runs = [one_call() for _ in range(args.runs)]
    ttft = [(s[0] - t0) * 1e3 for t0, s, _, _ in runs]
    per_tok = [1e3 * (s[-1] - s[0]) / (len(s) - 1) for _, s, _, _ in runs]
    text_ms, speech_ms = [], []
    for _, s, ph, _ in runs:
        for i in range(1, len(s)):
            (text_ms if ph[i] == "text" else speech_ms).append((s[i] - s[i - 1]) * 1e3)
    n_new = len(runs[0][1])
    out = {
        "bench": "decode_s2s_greedy", "model": "release (random)" if args.release else "tiny (full vocab)",
        "device": str(device), "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
        "tokenizer": tok_name, "clip_s": args.clip_s, "prompt_tokens": runs[0][3]["prompt_tokens"],
        "new_tokens": n_new, "text_tokens": runs[0][2].count("text"), "runs": args.runs,
        "ttft_ms_min": min(ttft), "ttft_ms_med": statistics.median(ttft),
        "prefill_ms_med": statistics.median(r[3]["prefill_ms"] for r in runs),
        "ms_per_token_min": min(per_tok), "ms_per_token_med": statistics.median(per_tok),
        "text_phase_ms_per_token_med": statistics.median(text_ms) if text_ms else None,
        "speech_phase_ms_per_token_med": statistics.median(speech_ms) if speech_ms else None,
        "tokens_per_s_med": 1e3 / statistics.median(per_tok),
        "whole_call_ms_med": statistics.median((s[-1] - t0) * 1e3 for t0, s, _, _ in runs),
        "cold_ttft_ms": (cold[1][0] - cold[0]) * 1e3,
        "load_avg_1min": os.getloadavg()[0],
        "peak_rss_mb": _peak_rss_mb(),
        "upstream_reference": {"ttft_ms_med": 45.6, "ms_per_token_med": 3.57, "tokens_per_s_med": 280,
                               "whole_call_ms_med": 157.2, "source": "docs/upstream_compat.md Baselines, 1.37 s clip"},
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
