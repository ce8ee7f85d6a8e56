"""Training metrics: token-weighted accumulation over micro-batches (and ranks), the console
progress line with ETA, tensorboard scalars and a per-step ``metrics.jsonl`` (rank 0 only)."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping

import torch

from osum_echat.model.batch import PAD, Batch
from osum_echat.train import distributed as dist_util

logger = logging.getLogger(__name__)

# Per-micro-batch sums; every one of them is token- or count-weighted so sums reduce exactly.
FIELDS = ("loss_sum", "tokens", "text_loss_sum", "text", "text_correct", "speech_loss_sum",
          "speech", "speech_correct", "samples", "positions", "pad_positions")


def batch_sums(out: Mapping[str, torch.Tensor], batch: Batch) -> dict[str, float]:
    n, nt, ns = float(out["num_tokens"]), float(out["num_text"]), float(out["num_speech"])
    return {"loss_sum": float(out["loss_token"]) * n, "tokens": n,
            "text_loss_sum": float(out["loss_text"]) * nt, "text": nt,
            "text_correct": float(out["acc_text"]) * nt,
            "speech_loss_sum": float(out["loss_speech"]) * ns, "speech": ns,
            "speech_correct": float(out["acc_speech"]) * ns,
            "samples": float(batch.num_examples), "positions": float(batch.kinds.numel()),
            "pad_positions": float((batch.kinds == PAD).sum())}


def batch_family(batch: Batch) -> str:
    fams = set(batch.families)
    return fams.pop() if len(fams) == 1 else "mixed"


class Accumulator:
    """Sums per family; ``reduce()`` all-reduces over ranks and returns averages."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0.0))

    def add(self, family: str, sums: Mapping[str, float]) -> None:
        acc = self.sums[family]
        for k, v in sums.items():
            acc[k] += v

    def reduce(self, device: torch.device, families: list[str]) -> dict[str, dict[str, float]]:
        """Averages per family (``families`` fixes the order, identical on every rank) + 'all'."""
        table = torch.tensor([[self.sums[f][k] if f in self.sums else 0.0 for k in FIELDS]
                              for f in families], dtype=torch.float64, device=device)
        table = dist_util.all_reduce(table).cpu()
        out = {f: averages(dict(zip(FIELDS, row.tolist()))) for f, row in zip(families, table)}
        out = {f: v for f, v in out.items() if v["samples"] > 0}
        out["all"] = averages(dict(zip(FIELDS, table.sum(0).tolist())))
        return out


def averages(s: Mapping[str, float]) -> dict[str, float]:
    def div(a: float, b: float) -> float:
        return a / b if b else 0.0

    return {"loss": div(s["loss_sum"], s["tokens"]), "loss_text": div(s["text_loss_sum"], s["text"]),
            "acc_text": div(s["text_correct"], s["text"]), "loss_speech": div(s["speech_loss_sum"], s["speech"]),
            "acc_speech": div(s["speech_correct"], s["speech"]), "tokens": s["tokens"],
            "samples": s["samples"], "positions": s["positions"],
            "padding_ratio": div(s["pad_positions"], s["positions"])}


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Reporter:
    """Rank-0 output: progress line every ``log_interval`` steps, tensorboard, metrics.jsonl."""

    def __init__(self, model_dir: Path, tensorboard_dir: str | None, is_main: bool,
                 log_interval: int, max_steps: int, start_step: int) -> None:
        self.is_main, self.log_interval, self.max_steps = is_main, log_interval, max_steps
        self.start_step, self.start_time = start_step, time.perf_counter()
        self.window: list[dict[str, Any]] = []
        self.writer = None
        self.jsonl = None
        if is_main:
            if tensorboard_dir:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=tensorboard_dir)
            self.jsonl = open(model_dir / "metrics.jsonl", "a", encoding="utf-8")

    def step(self, step: int, stats: dict[str, dict[str, float]], lrs: list[float], parts: list[str],
             grad_norm: float, seconds: float, memory_mb: float, base_lr: float) -> None:
        """``base_lr``: the schedule's rate, logged as ``lr`` (``lrs`` per group go to the
        ``train/lr_<part>`` scalars, where ``train.lr_scale`` shows)."""
        if not self.is_main:
            return
        a = stats["all"]
        rec = {"step": step, "loss": a["loss"], "loss_text": a["loss_text"], "loss_speech": a["loss_speech"],
               "acc_text": a["acc_text"], "acc_speech": a["acc_speech"], "grad_norm": grad_norm,
               "lr": base_lr, "seconds": seconds, "tokens": a["tokens"],
               "samples": a["samples"], "positions": a["positions"], "padding_ratio": a["padding_ratio"],
               "memory_mb": memory_mb,
               "family_loss": {f: v["loss"] for f, v in stats.items() if f != "all"}}
        self.jsonl.write(json.dumps(rec) + "\n")
        self.jsonl.flush()
        self.window.append(rec)
        if step % self.log_interval and step != self.max_steps:
            return
        secs = sum(r["seconds"] for r in self.window) or 1e-9
        tok_s = sum(r["positions"] for r in self.window) / secs
        smp_s = sum(r["samples"] for r in self.window) / secs
        self.window = []
        per_step = (time.perf_counter() - self.start_time) / max(1, step - self.start_step)
        logger.info(
            "step %d/%d | loss %.4f (text %.4f speech %.4f) | acc text %.3f speech %.3f | lr %.3e | "
            "grad %.3f | %.1f samples/s %.0f tokens/s | pad %.1f%% | mem %.0f MB | ETA %s",
            step, self.max_steps, a["loss"], a["loss_text"], a["loss_speech"], a["acc_text"], a["acc_speech"],
            rec["lr"], grad_norm, smp_s, tok_s, 100 * a["padding_ratio"], memory_mb,
            _hms(per_step * (self.max_steps - step)))
        if self.writer is not None:
            w = self.writer
            for key in ("loss", "loss_text", "loss_speech", "acc_text", "acc_speech", "padding_ratio"):
                w.add_scalar(f"train/{key}", a[key], step)
            for fam, v in stats.items():
                if fam != "all":
                    w.add_scalar(f"train/loss_{fam}", v["loss"], step)
            for part, lr in zip(parts, lrs):
                w.add_scalar(f"train/lr_{part}", lr, step)
            w.add_scalar("train/grad_norm", grad_norm, step)
            w.add_scalar("train/tokens_per_s", tok_s, step)
            w.add_scalar("train/samples_per_s", smp_s, step)
            w.add_scalar("train/memory_mb", memory_mb, step)
            w.flush()

    def cv(self, step: int, stats: dict[str, dict[str, float]]) -> None:
        if not self.is_main:
            return
        for fam, v in stats.items():
            logger.info("CV step %d %s | loss %.4f (text %.4f speech %.4f) | acc text %.3f speech %.3f | %d tokens",
                        step, fam, v["loss"], v["loss_text"], v["loss_speech"], v["acc_text"],
                        v["acc_speech"], v["tokens"])
            if self.writer is not None:
                for key in ("loss", "loss_text", "loss_speech", "acc_text", "acc_speech"):
                    self.writer.add_scalar(f"cv/{fam}/{key}", v[key], step)
        if self.writer is not None:
            self.writer.flush()
        self.jsonl.write(json.dumps({"step": step, "cv": stats}) + "\n")
        self.jsonl.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.jsonl is not None:
            self.jsonl.close()
