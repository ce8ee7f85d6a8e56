"""Check the memory planner against a real CPU training step.

Each case runs in a fresh process: the model is built, two optimizer steps run (the second
with AdamW's states present, as in every later step), and the measured peak is the process's
VmHWM minus its VmRSS just before the model was built. glibc's mmap threshold is pinned low
(``MALLOC_MMAP_THRESHOLD_``) so freed large tensors go back to the kernel and RSS follows the
allocator, and one step of the tiny model runs first (then is freed) so one-off runtime costs
(imports on first use, thread pools, kernel caches) sit in the baseline. The same step is planned with ``osum_echat.train.memory_plan`` on device "cpu" (no
CUDA allowances). Batch: two S2S-shaped examples (10.96 s and 10.00 s of speech, 30 prompt ids,
40 reply ids and 421 speech codes supervised), one padded row each.

    python tools/bench/memory_check.py --all          # every case, one JSON line each
    python tools/bench/memory_check.py --case bench_ckpt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# the upstream-shaped bench model of tools/bench/train_step.py (fp32, everything trains)
BENCH = ["model.adapter.ffn_dim=2560", "model.adapter.num_layers=4", "model.llm.vocab_size=151936",
         "model.llm.intermediate_size=128", "model.encoder.activation_checkpointing=true",
         "model.trainable=[encoder,adapter,llm,speech]"]
# a mid-size model (80 M parameters) in bf16 autocast
MID = ["model.llm.hidden_size=384", "model.llm.intermediate_size=1024", "model.llm.num_heads=8",
       "model.llm.num_kv_heads=2", "model.llm.num_layers=8", "model.llm.vocab_size=151936",
       "model.encoder.d_model=256", "model.encoder.ffn_dim=1024", "model.encoder.num_layers=4",
       "model.encoder.num_heads=4", "model.adapter.d_model=256", "model.adapter.ffn_dim=2560",
       "model.adapter.num_layers=4"]
CKPT = ["model.llm.activation_checkpointing=true"]
LORA = ["model.lora.enable=true", "model.lora.r=16", "model.lora.dropout=0.1"]
CASES = {
    "bench": (BENCH, "fp32"),
    "bench_ckpt": (BENCH + CKPT, "fp32"),
    "bench_lora": (BENCH + LORA + ["model.trainable=[adapter,lora,speech]"], "fp32"),
    "mid_bf16": (MID + ["model.trainable=[adapter,llm,speech]"], "bf16"),
    "mid_bf16_ckpt": (MID + CKPT + ["model.trainable=[adapter,llm,speech]"], "bf16"),
    "mid_bf16_lora_ckpt": (MID + CKPT + LORA + ["model.trainable=[adapter,lora,speech]"], "bf16"),
}
FRAMES = (1096, 1000)


def proc_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def make_batch(vocab: int):
    import torch

    from osum_echat.model.batch import Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate

    exs = []
    for i, frames in enumerate(FRAMES):
        g = torch.Generator().manual_seed(i)
        codes = torch.randint(0, 4096, (421,), generator=g).tolist()
        exs.append(Example([TextSegment(list(range(100, 130))), SpeechInSegment(torch.randn(frames, 80, generator=g)),
                            TextSegment(list(range(200, 240)), supervised=True),
                            SpeechOutSegment([4096] + codes + [4096], supervised=True)], key=str(i)))
    return collate(exs, vocab)


def warm_up_runtime(dtype: str) -> None:
    """One step of the tiny model, then everything freed, so that one-off runtime costs
    (imports done on first use, allocator arenas, kernel caches) are in the baseline."""
    import gc

    import torch

    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.train.config import TrainConfig
    from osum_echat.train.engine import TorchEngine

    cfg = load_config(REPO / "conf/model/tiny.yaml", ["model.llm.activation_checkpointing=true"]).model
    engine = TorchEngine(build_model(cfg).train(), TrainConfig(dtype=dtype, accum_grad=1, warmup_steps=0),
                         torch.device("cpu"), distributed=False)
    engine.forward_backward(make_batch(cfg.llm.vocab_size), boundary=True)
    engine.step()
    del engine
    gc.collect()


def run_case(name: str) -> dict:
    import torch

    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.train.config import TrainConfig
    from osum_echat.train.engine import TorchEngine
    from osum_echat.train.memory_activations import Workload
    from osum_echat.train.memory_plan import PlanOptions, plan_memory

    overrides, dtype = CASES[name]
    cfg = load_config(REPO / "conf/model/tiny.yaml", overrides).model
    batch = make_batch(cfg.llm.vocab_size)
    n = batch.num_examples
    work = Workload(audio_s=sum(FRAMES) / len(FRAMES) / 100, prompt_tokens=0,
                    reply_tokens=batch.num_targets / n, examples=n)
    work = dataclasses.replace(work, prompt_tokens=batch.kinds.shape[1] - work.positions_per_example)
    plan = plan_memory(cfg, PlanOptions(dtype=dtype, device="cpu", workload=work))
    warm_up_runtime(dtype)  # lazy imports, thread pools, oneDNN: not the model's memory
    torch.manual_seed(0)
    before = proc_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM
    model = build_model(cfg).train()
    engine = TorchEngine(model, TrainConfig(dtype=dtype, accum_grad=1, lr=1e-5, warmup_steps=0),
                         torch.device("cpu"), distributed=False)
    for _ in range(2):
        engine.forward_backward(batch, boundary=True)
        engine.step()
    measured = (proc_mb("VmHWM") - before) * 2**20
    return {"case": name, "dtype": dtype, "params": plan.params.total, "trainable": plan.params.trainable,
            "positions": int(batch.kinds.numel()), "measured_gb": round(measured / 1e9, 4),
            "planned_gb": round(plan.allocated / 1e9, 4), "error_pct": round(100 * (plan.allocated / measured - 1), 1),
            "terms_gb": {k: round(v / 1e9, 4) for k, v in plan.terms.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES))
    p.add_argument("--all", action="store_true")
    args = p.parse_args()
    if args.all or not args.case:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
        for name in CASES:
            subprocess.run([sys.executable, __file__, "--case", name], check=True, env=env)
        return
    print(json.dumps(run_case(args.case)), flush=True)


if __name__ == "__main__":
    main()
