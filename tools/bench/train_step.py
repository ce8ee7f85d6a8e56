"""Training-step throughput, measured as upstream's train-step baseline (docs/upstream_compat.md,
"Baselines").

Tiny model shaped like upstream's (encoder 2 blocks d 64 / 4 heads / ffn 128; adapter d 64 with
the release adapter's 4 heads / ffn 2560 / 4 blocks; Qwen2 hidden 64, 2 layers, 4/2 heads,
intermediate 128, vocab 151,936 tied: 11,856,129 parameters, all trainable), fp32, train mode,
one step = forward + backward + clip 5 + AdamW + zero_grad + WarmupLR step (accum 1).
Batches: the first two utterances of a generated upstream-format shard
(``tests/fixtures/make_upstream_format.py``: the shape and texts of upstream's sample shard,
10.96 s of synthesized audio each), re-tasked as S2S (``<S2TCHAT> <TEXT2TOKEN>``, the answer
text + 421 speech codes) or ASR (``<TRANSCRIBE>``, the question as the transcript), tokenised
with the real Qwen BPE when dashscope is installed. B = 2; tokens/s counts all B x L LLM
positions (as upstream). ``--pack`` puts both examples on one row (block-diagonal attention
through position-id restarts).

    python tools/bench/train_step.py --batch s2s [--pack] [--steps 10] [--peak_tflops X]
    python tools/bench/train_step.py --all          # every config, each in a fresh process
    python tools/bench/train_step.py --release --batch s2s   # 3B release config, bf16, GPU if any
    python tools/bench/train_step.py --batch asr --encoder_cache_mb 64 'model.trainable=[adapter,llm,speech]'
        # frozen encoder served from the cache (train.encoder_cache_mb; docs/benchmarks.md)

Peak memory: on CPU the kernel's VmHWM (reset just before the step loop), on GPUs the peak
allocated bytes. MFU = 6 * N_trainable * positions / step time / peak FLOP/s (``--peak_tflops``;
omitted on CPU unless given). One JSON object per run on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

TINY = ["model.adapter.ffn_dim=2560", "model.adapter.num_layers=4", "model.llm.vocab_size=151936",
        "model.llm.intermediate_size=128", "model.encoder.activation_checkpointing=true",
        "model.trainable=[encoder,adapter,llm,speech]"]
UPSTREAM = {"s2s": {"positions_per_s": 352, "peak_rss_gb": 4.89, "L": 664},
            "asr": {"positions_per_s": 367, "peak_rss_gb": 1.67, "L": 208}}


def tokenizer():
    from osum_echat.text.build_tokenizer import build_qwen_tokenizer, find_qwen_tiktoken, train_bpe_tokenizer

    if find_qwen_tiktoken() is not None:
        return build_qwen_tokenizer(), "qwen"
    return train_bpe_tokenizer(["hello world"] * 10, vocab_size=300), "tiny-bpe"


def make_list(kind: str, out_dir: Path) -> str:
    """The first two utterances of a generated upstream-format shard, re-tasked, as a raw jsonl list."""
    from make_upstream_format import write_upstream_format

    from osum_echat.data.drops import DropCounter
    from osum_echat.data.sources import iter_unit

    tar = write_upstream_format(out_dir / "upstream_format", num_utts=2) / "shard" / "shards_000000000.tar"
    samples = []
    for s in iter_unit(str(tar), "0", {}, DropCounter(), "shard"):
        samples.append(s)
        if len(samples) == 2:
            break
    recs = []
    for i, s in enumerate(samples):
        wav = out_dir / f"{i}.wav"
        wav.write_bytes(s.audio.data)
        if kind == "s2s":
            rec = {"key": s.key, "wav": str(wav), "txt": s.txt, "task": "<S2TCHAT> <TEXT2TOKEN>",
                   "extra": {"question": s.extra.get("question", ""), "speech_token": s.extra["speech_token"]}}
        else:
            rec = {"key": s.key, "wav": str(wav), "txt": s.extra.get("question", ""), "task": "<TRANSCRIBE>",
                   "extra": {"instruction": "请转录这段音频。"}}
        recs.append(json.dumps(rec, ensure_ascii=False))
    path = out_dir / f"{kind}.jsonl"
    path.write_text("\n".join(recs) + "\n", encoding="utf-8")
    return str(path)


def make_batch(kind: str, pack: bool, tok, vocab: int):
    from osum_echat.data.config import DataConfig
    from osum_echat.data.loader import build_loader

    cfg = DataConfig(prompt_files=[str(REPO / "conf/prompts/understanding.yaml")])
    cfg.augment.spec_aug = cfg.augment.spec_sub = False
    cfg.filter.max_seq_len = 0
    cfg.batch.batch_type = "pack" if pack else "static"
    cfg.batch.batch_size = 2
    cfg.batch.pack_max_tokens = 4096
    cfg.batch.max_tokens_in_batch = 4096
    cfg.batch.shuffle = cfg.batch.sort = False
    with tempfile.TemporaryDirectory() as d:
        lst = make_list(kind, Path(d))
        batches = list(build_loader(cfg, {"all": lst}, tok, text_vocab_size=vocab, train=False))
    if len(batches) != 1 or batches[0].num_examples != 2:
        raise RuntimeError(f"expected one batch of 2 examples, got {[b.num_examples for b in batches]}")
    return batches[0]


def proc_status_mb(field: str) -> float:
    """VmHWM (peak RSS) or VmRSS (current) of this process, in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def vm_hwm_mb() -> float:
    return proc_status_mb("VmHWM")


def reset_vm_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from osum_echat import device as devlib
    from osum_echat.config import load_config
    from osum_echat.model.build import build_model, count_parameters
    from osum_echat.train.config import TrainConfig
    from osum_echat.train.engine import TorchEngine

    torch.manual_seed(0)
    if args.release:
        cfg = load_config(REPO / "conf/model/osum_echat_3b.yaml", args.override)
        dtype, device = "bf16", devlib.resolve_device(args.device)
    else:
        cfg = load_config(REPO / "conf/model/tiny.yaml", TINY + args.override)
        dtype, device = "fp32", devlib.resolve_device(args.device or "cpu")
    tok, tok_name = tokenizer()
    batch = make_batch(args.batch, args.pack, tok, cfg.model.llm.vocab_size)
    model = build_model(cfg.model).train()
    if args.encoder_cache_mb:
        model.enable_encoder_cache(args.encoder_cache_mb)  # the warm-up steps fill it
    n_params, n_train = count_parameters(model), count_parameters(model, trainable_only=True)
    tcfg = TrainConfig(dtype=dtype, accum_grad=1, grad_clip=5.0, lr=1e-6, warmup_steps=2000)
    engine = TorchEngine(model, tcfg, device, distributed=False)
    positions = batch.kinds.numel()

    def step() -> float:
        out = engine.forward_backward(batch, boundary=True)
        engine.step()
        return float(out["loss"].detach())

    for _ in range(args.warmup):
        step()
    rss_before = proc_status_mb("VmRSS")
    reset_vm_hwm()
    devlib.reset_peak_memory(device)
    times, cpu_times, losses = [], [], []
    for _ in range(args.steps):
        devlib.synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(step())
        devlib.synchronize(device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    med = statistics.median(times)
    peak_mb = vm_hwm_mb() if device.type == "cpu" else devlib.peak_memory_mb(device)
    peak_tflops = args.peak_tflops
    mfu = 6 * n_train * positions / med / (peak_tflops * 1e12) if peak_tflops else None
    res = {"bench": "train_step", "batch": args.batch, "pack": args.pack, "release": args.release,
           "trainable_parts": list(cfg.model.trainable), "encoder_cache_mb": args.encoder_cache_mb,
           "device": str(device), "dtype": dtype, "tokenizer": tok_name, "threads": torch.get_num_threads(),
           "params": n_params, "trainable": n_train, "rows": int(batch.kinds.shape[0]),
           "L": int(batch.kinds.shape[1]), "positions": positions, "samples": batch.num_examples,
           "padding_ratio": round(batch.padding_ratio(), 4), "step_ms_median": round(med * 1e3, 1),
           "step_ms_min": round(min(times) * 1e3, 1), "tokens_per_s": round(positions / med, 1),
           # process CPU time (all threads): on a shared CPU, wall time includes waiting for cores
           "step_cpu_ms_median": round(statistics.median(cpu_times) * 1e3, 1),
           "load_average_1m": round(os.getloadavg()[0], 2),
           "samples_per_s": round(batch.num_examples / med, 2), "peak_memory_mb": round(peak_mb, 1),
           "memory_kind": "VmHWM" if device.type == "cpu" else "max_allocated",
           "rss_before_loop_mb": round(rss_before, 1),
           "loop_increment_mb": round(peak_mb - rss_before, 1) if device.type == "cpu" else None, "mfu": None if mfu is None else round(mfu, 4),
           "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4)}
    if not args.release:
        up = UPSTREAM[args.batch]
        res["upstream"] = up
        res["speedup_vs_upstream"] = round(res["tokens_per_s"] / up["positions_per_s"], 2)
        res["memory_ratio_vs_upstream"] = round(peak_mb / 1024 / up["peak_rss_gb"], 3)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", choices=["s2s", "asr"], default="s2s")
    p.add_argument("--pack", action="store_true")
    p.add_argument("--release", action="store_true", help="release architecture, random weights, bf16")
    p.add_argument("--device", default=None)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak_tflops", type=float, default=None, help="device peak, for MFU")
    p.add_argument("--encoder_cache_mb", type=float, default=0.0,
                   help="serve a frozen encoder from the output cache (needs model.trainable without encoder)")
    p.add_argument("--all", action="store_true", help="s2s/asr x pack off/on, each in a fresh process")
    p.add_argument("override", nargs="*", help="dotted config overrides")
    args = p.parse_args()
    if args.all:
        for batch in ("s2s", "asr"):
            for pack in (False, True):
                cmd = [sys.executable, __file__, "--batch", batch, "--steps", str(args.steps),
                       "--warmup", str(args.warmup)] + (["--pack"] if pack else [])
                if args.peak_tflops:
                    cmd += ["--peak_tflops", str(args.peak_tflops)]
                subprocess.run(cmd, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        return
    print(json.dumps(run_one(args)), flush=True)


if __name__ == "__main__":
    main()
