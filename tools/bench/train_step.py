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
    python tools/bench/train_step.py --release --device cpu --dtype bf16 --lora --frozen_dtype bf16 \
        --steps 2 --warmup 0   # the 24 GB fine-tuning step (conf/finetune_24gb.yaml) on one host
    python tools/bench/train_step.py --batch asr --encoder_cache_mb 64 'model.trainable=[adapter,llm,speech]'
        # frozen encoder served from the cache (train.encoder_cache_mb; docs/benchmarks.md)

Peak memory: on CPU the kernel's VmHWM (reset just before the step loop), on GPUs the peak
allocated bytes. MFU = 6 * N_trainable * positions / step time / peak FLOP/s (``--peak_tflops``;
omitted on CPU unless given). One JSON object per run on stdout.

``--lora`` runs the fine-tuning set of ``conf/finetune_24gb.yaml`` (LoRA r 64 on the LLM, frozen
encoder, adapter and speech head trainable, LLM activation checkpointing, 256-row loss chunks).
``--frozen_dtype bf16`` builds the frozen parameters directly in bf16 (no fp32 copy is ever
made; the trainable ones are fp32), else every weight is fp32 as in the torch engine. With
``--lora`` the JSON also has the model's own peak (VmHWM from just before the model was built,
minus the VmRSS then; run with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors leave the RSS)
and the memory planner's figure for the same step (``plan_memory --device cpu``), with the error.
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
# the fine-tuning set of conf/finetune_24gb.yaml on the tiny model
LORA = ["model.lora.enable=true", "model.trainable=[adapter,lora,speech]", "model.llm.activation_checkpointing=true",
        "model.loss_chunk_size=256"]
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


def config_source(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """(config file, overrides) of the run: the release model (``--lora``: with the fine-tuning
    set of conf/finetune_24gb.yaml) or the tiny upstream-shaped one (``--lora``: the same set)."""
    if args.release:
        return REPO / ("conf/finetune_24gb.yaml" if args.lora else "conf/model/osum_echat_3b.yaml"), args.override
    lora = LORA if args.lora else []
    return REPO / "conf/model/tiny.yaml", TINY + lora + args.override


def build_bench_model(cfg, frozen_dtype: str):
    """Random weights; with ``frozen_dtype`` bf16 built in bf16 from the start (default dtype),
    then only the trainable parameters are made fp32 (AdamW states and gradients stay fp32)."""
    import torch

    from osum_echat.model.build import build_model

    if frozen_dtype == "fp32":
        return build_model(cfg)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = build_model(cfg)
    finally:
        torch.set_default_dtype(old)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return model


def weight_dtypes(model) -> dict[str, int]:
    """Parameters per storage dtype (tied ones once)."""
    out: dict[str, int] = {}
    seen: set[int] = set()
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            key = str(p.dtype).replace("torch.", "")
            out[key] = out.get(key, 0) + p.numel()
    return out


def model_peak_vs_plan(model_cfg, batch, dtype: str, frozen_dtype: str, measured_mb: float) -> dict:
    """The planner's peak for this step (device cpu, the batch's shape) next to the measured one."""
    import dataclasses

    from osum_echat.train.memory_activations import Workload
    from osum_echat.train.memory_plan import PlanOptions, plan_memory

    n = batch.num_examples
    audio_s = float(batch.feats_lengths.float().mean()) / 100
    work = Workload(audio_s=audio_s, prompt_tokens=0, reply_tokens=batch.num_targets / n, examples=n)
    work = dataclasses.replace(work, prompt_tokens=int(batch.kinds.shape[1]) - work.positions_per_example)
    plan = plan_memory(model_cfg, PlanOptions(dtype=dtype, device="cpu", frozen_dtype=frozen_dtype, workload=work))
    measured = measured_mb * 2**20
    return {"model_peak_gb": round(measured / 1e9, 3), "planned_gb": round(plan.allocated / 1e9, 3),
            "plan_error_pct": round(100 * (plan.allocated / measured - 1), 1),
            "plan_workload": dataclasses.asdict(work),
            "plan_terms_gb": {k: round(v / 1e9, 4) for k, v in plan.terms.items()}}


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from osum_echat import device as devlib
    from osum_echat.config import load_config
    from osum_echat.model.build import count_parameters
    from osum_echat.train.config import TrainConfig
    from osum_echat.train.engine import TorchEngine

    torch.manual_seed(0)
    cfg = load_config(*config_source(args))
    if args.release:
        dtype, device = args.dtype or "bf16", devlib.resolve_device(args.device)
    else:
        dtype, device = args.dtype or "fp32", devlib.resolve_device(args.device or "cpu")
    tok, tok_name = tokenizer()
    batch = make_batch(args.batch, args.pack, tok, cfg.model.llm.vocab_size)
    if args.lora and device.type == "cpu":
        sys.path.insert(0, str(REPO / "tools" / "bench"))
        from memory_check import warm_up_runtime

        warm_up_runtime(dtype)  # one-off runtime costs into the baseline, as tools/bench/memory_check.py
    rss_before_model = proc_status_mb("VmRSS")
    reset_vm_hwm()
    model = build_bench_model(cfg.model, args.frozen_dtype).train()
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
    build_peak = vm_hwm_mb()  # model build (+ warm-up steps)
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
        # progress on stderr (long release steps): the step's time and the peak so far
        sys.stderr.write(f"step {len(times)}: {times[-1]:.1f} s, loss {losses[-1]:.4f}, "
                         f"VmHWM {vm_hwm_mb():.0f} MB, build peak {build_peak:.0f} MB, "
                         f"RSS before model {rss_before_model:.0f} MB\n")
        sys.stderr.flush()
    med = statistics.median(times)
    peak_mb = vm_hwm_mb() if device.type == "cpu" else devlib.peak_memory_mb(device)
    peak_tflops = args.peak_tflops
    mfu = 6 * n_train * positions / med / (peak_tflops * 1e12) if peak_tflops else None
    res = {"bench": "train_step", "batch": args.batch, "pack": args.pack, "release": args.release,
           "trainable_parts": list(cfg.model.trainable), "encoder_cache_mb": args.encoder_cache_mb,
           "lora": cfg.model.lora.enable, "llm_checkpointing": cfg.model.llm.activation_checkpointing,
           "device": str(device), "dtype": dtype, "frozen_dtype": args.frozen_dtype,
           "weight_dtypes": weight_dtypes(model), "tokenizer": tok_name, "threads": torch.get_num_threads(),
           "params": n_params, "trainable": n_train, "rows": int(batch.kinds.shape[0]),
           "L": int(batch.kinds.shape[1]), "positions": positions, "samples": batch.num_examples,
           "padding_ratio": round(batch.padding_ratio(), 4), "step_ms_median": round(med * 1e3, 1),
           "step_ms_min": round(min(times) * 1e3, 1), "tokens_per_s": round(positions / med, 1),
           # process CPU time (all threads): on a shared CPU, wall time includes waiting for cores
           "step_cpu_ms_median": round(statistics.median(cpu_times) * 1e3, 1),
           "load_average_1m": round(os.getloadavg()[0], 2),
           "samples_per_s": round(batch.num_examples / med, 2), "peak_memory_mb": round(peak_mb, 1),
           "memory_kind": "VmHWM" if device.type == "cpu" else "max_allocated",
           "rss_before_loop_mb": round(rss_before, 1), "build_peak_mb": round(build_peak, 1),
           "loop_increment_mb": round(peak_mb - rss_before, 1) if device.type == "cpu" else None, "mfu": None if mfu is None else round(mfu, 4),
           "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4)}
    if args.lora and device.type == "cpu":
        res.update(model_peak_vs_plan(cfg.model, batch, dtype, args.frozen_dtype,
                                      max(build_peak, peak_mb) - rss_before_model))
        res["rss_before_model_mb"] = round(rss_before_model, 1)
        res["malloc_mmap_threshold"] = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    if not args.release:
        up = UPSTREAM[args.batch]
        res["upstream"] = up
        res["speedup_vs_upstream"] = round(res["tokens_per_s"] / up["positions_per_s"], 2)
        res["memory_ratio_vs_upstream"] = round(peak_mb / 1024 / up["peak_rss_gb"], 3)
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", choices=["s2s", "asr"], default="s2s")
    p.add_argument("--pack", action="store_true")
    p.add_argument("--release", action="store_true", help="release architecture, random weights, bf16")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default=None,
                   help="compute dtype (train.dtype; bf16 = autocast); default bf16 with --release, else fp32")
    p.add_argument("--frozen_dtype", choices=["bf16", "fp32"], default="fp32",
                   help="storage dtype of the frozen parameters (bf16: built in bf16, no fp32 copy)")
    p.add_argument("--lora", action="store_true",
                   help="LoRA + frozen encoder + LLM checkpointing (the set of conf/finetune_24gb.yaml)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak_tflops", type=float, default=None, help="device peak, for MFU")
    p.add_argument("--encoder_cache_mb", type=float, default=0.0,
                   help="serve a frozen encoder from the output cache (needs model.trainable without encoder)")
    p.add_argument("--all", action="store_true", help="s2s/asr x pack off/on, each in a fresh process")
    p.add_argument("override", nargs="*", help="dotted config overrides")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
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
