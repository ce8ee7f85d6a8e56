"""Training configuration (the ``train:`` section).

Steps count *optimizer updates* (one update = ``accum_grad`` micro-batches on every rank).
This module imports nothing from ``osum_echat.config`` (that would be circular).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PARTS = ("encoder", "adapter", "llm", "lora", "speech")
SCHEDULERS = ("warmuplr", "cosine", "constant")


@dataclass
class TrainConfig:
    seed: int = 777
    # Compute dtype: fp32, or bf16 autocast (DeepSpeed: bf16 weights + fp32 master copies).
    dtype: str = "bf16"
    max_steps: int = 10000  # optimizer updates; the data stream restarts per family
    accum_grad: int = 8  # micro-batches per update (upstream 8)
    grad_clip: float = 5.0  # global L2 norm; 0 = no clipping (upstream 5)
    # AdamW (upstream: lr 1e-6 in the released config, betas 0.9/0.99, eps 1e-6, wd 0.01).
    optimizer: str = "adamw"  # adamw | adam
    lr: float = 1.0e-6
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1.0e-6
    weight_decay: float = 0.01  # never applied to norms, biases or other 1-D parameters
    # Learning-rate multiplier per trainable part, e.g. {adapter: 10.0}; parts not named get 1.
    lr_scale: dict[str, float] = field(default_factory=dict)
    # warmuplr: linear warmup to lr, then lr * sqrt(warmup / step) (upstream WarmupLR);
    # cosine: linear warmup, then cosine down to lr * min_lr_ratio at max_steps; constant.
    scheduler: str = "warmuplr"
    warmup_steps: int = 2000
    min_lr_ratio: float = 0.0
    log_interval: int = 10  # optimizer steps between progress lines / tensorboard points
    save_interval: int = 1250  # optimizer steps between checkpoints (+ one at the end)
    keep_last: int = 5  # step checkpoints kept on disk (0 = all)
    cv_max_batches: int = 0  # 0 = the whole CV list at every checkpoint
    # Host memory (MB) for a cache of the frozen encoder's outputs, keyed by the features'
    # content (osum_echat/model/encoder_cache.py); 0 = off. Needs a frozen encoder without
    # dropout; pointless with spec augmentation (every pass differs).
    encoder_cache_mb: float = 0.0
    # A file of that cache shared by stages with the same frozen encoder: read at the start
    # (only if written for the same encoder weights), written at the end (main process); "" = none.
    encoder_cache_file: str = ""
    # Fused AdamW kernel where the device has one (device.fused_optimizer_supported); false =
    # the multi-tensor (foreach) implementation.
    fused_optimizer: bool = True
    # Opt-in torch.compile of each LLM decoder layer (torch engine; the first steps compile).
    compile: bool = False

    def validate(self) -> None:
        checks = [
            (self.dtype in ("fp32", "bf16"), f"dtype must be fp32 or bf16, got {self.dtype!r}"),
            (self.optimizer in ("adamw", "adam"), f"optimizer must be adamw or adam, got {self.optimizer!r}"),
            (self.scheduler in SCHEDULERS, f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}"),
            (self.max_steps > 0, "max_steps must be > 0"),
            (self.accum_grad >= 1, "accum_grad must be >= 1"),
            (self.grad_clip >= 0, "grad_clip must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (len(self.betas) == 2, "betas must have two values"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio must be in [0, 1]"),
            (self.log_interval >= 1 and self.save_interval >= 1, "log_interval and save_interval must be >= 1"),
            (self.keep_last >= 0, "keep_last must be >= 0"),
            (self.encoder_cache_mb >= 0, "encoder_cache_mb must be >= 0"),
            (not self.encoder_cache_file or self.encoder_cache_mb > 0,
             "encoder_cache_file needs the cache on (encoder_cache_mb > 0)"),
            (all(k in PARTS for k in self.lr_scale), f"lr_scale keys must be in {PARTS}"),
            (all(v > 0 for v in self.lr_scale.values()), "lr_scale values must be > 0"),
        ]
        for ok, what in checks:
            if not ok:
                raise ValueError(what)
