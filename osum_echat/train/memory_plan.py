"""Peak accelerator memory of one training step, estimated from the config (no allocation).

The model is built on the meta device, so parameter counts per part and the trainable set of
a stage are exact (the same ``build_model`` / ``set_trainable`` as training). Everything
else is a formula, per rank, in bytes:

* **weights**: torch engine (``zero=0``) keeps fp32 weights and runs bf16 autocast; DeepSpeed
  (``zero>=1``) keeps bf16 weights (fp32 with ``dtype=fp32``); ZeRO-3 shards them over N.
* **gradients**: one per trainable parameter, in the weights' dtype; ZeRO-2/3 shard them.
* **optimizer**: AdamW's two fp32 moments, plus the fp32 master copy when weights are bf16;
  ZeRO-1/2/3 shard them.
* **autocast copies**: bf16 autocast over fp32 weights casts every matrix a matmul uses and
  autograd keeps the cast for backward (activation checkpointing keeps one layer's at a time).
* **activations** (``osum_echat/train/memory_activations.py``): what autograd saves for
  backward in the LLM decoder layers, the encoder and the adapter, with or without
  checkpointing, plus the loss's logits chunk (``model.loss_chunk_size`` rows of the joint
  text + speech logits, fp32) and the backward working set.
* **peak**: the terms present throughout plus the larger of the forward peak (the loss's
  logits chunk) and the backward peak (parameter gradients and the working set).
* **allowances** (GPU only, stated separately): the CUDA context (outside the allocator's
  figures) and a fragmentation share of the allocator peak.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from osum_echat.model.config import ModelConfig
from osum_echat.train.memory_activations import Workload, activation_terms

logger = logging.getLogger(__name__)

GB = 1e9
CUDA_CONTEXT_BYTES = 0.6e9  # CUDA context + cuBLAS/cuDNN workspaces, outside max_allocated
FRAGMENTATION = 0.10  # caching-allocator slack as a share of the allocated peak
ZERO_BUCKET_ELEMENTS = 2e8  # reduce_bucket_size of conf/deepspeed/ds_stage*.json
ZERO3_PREFETCH_ELEMENTS = 5e7  # stage3_prefetch_bucket_size of conf/deepspeed/ds_stage3.json
# The step has two peaks: the end of the forward pass (all activations kept, the loss making
# its logits chunks; parameter gradients do not exist yet, zero_grad sets them to None) and the
# backward pass (gradients being filled while activations are released). Terms listed here
# belong to one of them only; every other term is present in both.
FORWARD_ONLY = ("loss_logits_chunk",)
BACKWARD_ONLY = ("gradients", "backward_working_set")
# Kept in the state dict for key compatibility with released checkpoints, never applied in
# forward (osum_echat/model/osum_echat.py), so it never gets a gradient or optimizer state.
UNUSED_PREFIXES = ("ln_speech.",)


@dataclass
class ParamCounts:
    """Parameter counts from the meta-device model (tied weights counted once)."""

    total: int
    trainable: int
    per_part: dict[str, int]  # all parameters per part (encoder, adapter, llm, lora, speech)
    trainable_per_part: dict[str, int]
    llm_layer_matrices: int  # weights of the Linear layers inside one decoder layer
    lm_head_trainable: bool
    unused_trainable: int = 0  # trainable but never applied (ln_speech): no gradient, no state

    @property
    def updated(self) -> int:
        """Trainable parameters that get gradients and optimizer states."""
        return self.trainable - self.unused_trainable


@dataclass
class PlanOptions:
    """What varies between runs of the same model config."""

    zero: int = 0  # 0 = torch engine (fp32 weights + autocast); 1/2/3 = DeepSpeed ZeRO stage
    gpus: int = 1
    dtype: str = "bf16"  # fp32 | bf16
    lora: bool | None = None  # None = as the config says; True turns LoRA on in place of 'llm'
    llm_checkpointing: bool | None = None  # None = as configured
    encoder_checkpointing: bool | None = None
    device: str = "cuda"  # cuda | npu | cpu (cpu: no context / fragmentation allowance)
    # torch engine only: storage of the frozen parameters (bf16 halves them; the trainable ones
    # stay fp32 with fp32 gradients and AdamW states)
    frozen_dtype: str = "fp32"
    workload: Workload = field(default_factory=Workload)

    def validate(self) -> None:
        if self.zero not in (0, 1, 2, 3):
            raise ValueError(f"zero must be 0, 1, 2 or 3, got {self.zero}")
        if self.gpus < 1:
            raise ValueError("gpus must be >= 1")
        if self.dtype not in ("fp32", "bf16"):
            raise ValueError(f"dtype must be fp32 or bf16, got {self.dtype!r}")
        if self.frozen_dtype not in ("fp32", "bf16"):
            raise ValueError(f"frozen_dtype must be fp32 or bf16, got {self.frozen_dtype!r}")
        if self.frozen_dtype == "bf16" and self.zero != 0:
            raise ValueError("frozen_dtype bf16 is for the torch engine (zero 0); ZeRO sets its own weight dtype")


@dataclass
class Plan:
    """Per-rank peak estimate: ``terms`` (bytes) give ``allocated`` (see FORWARD_ONLY);
    ``allowances`` add to it."""

    params: ParamCounts
    options: PlanOptions
    model: ModelConfig
    terms: dict[str, float]
    allowances: dict[str, float]

    @property
    def allocated(self) -> float:
        """Terms present throughout, plus the larger of the two phases' own terms."""
        t = self.terms
        both = sum(v for k, v in t.items() if k not in FORWARD_ONLY + BACKWARD_ONLY)
        fwd = sum(t.get(k, 0.0) for k in FORWARD_ONLY)
        bwd = sum(t.get(k, 0.0) for k in BACKWARD_ONLY)
        return float(both + max(fwd, bwd))

    @property
    def total(self) -> float:
        return self.allocated + float(sum(self.allowances.values()))


def effective_model(cfg: ModelConfig, opts: PlanOptions) -> ModelConfig:
    """The model config with the plan's overrides (LoRA, checkpointing) applied."""
    cfg = copy.deepcopy(cfg)
    if opts.lora is True and not cfg.lora.enable:
        cfg.lora.enable = True
        cfg.trainable = [p for p in cfg.trainable if p != "llm"] + ["lora"]
    elif opts.lora is False and cfg.lora.enable:
        cfg.lora.enable = False
        cfg.trainable = [p for p in cfg.trainable if p != "lora"]
        cfg.trainable += [] if "llm" in cfg.trainable else ["llm"]
    if opts.llm_checkpointing is not None:
        cfg.llm.activation_checkpointing = opts.llm_checkpointing
    if opts.encoder_checkpointing is not None:
        cfg.encoder.activation_checkpointing = opts.encoder_checkpointing
    cfg.validate()
    return cfg


def count_params(cfg: ModelConfig) -> ParamCounts:
    """Build ``cfg`` on the meta device and count parameters per part and trainable."""
    from osum_echat.model.build import build_model
    from osum_echat.model.trainable import part_of

    cfg = copy.deepcopy(cfg)
    cfg.llm.attn_implementation = "sdpa"  # same parameters; flash_attn need not be installed
    with torch.device("meta"):
        model = build_model(cfg)
    per_part: dict[str, int] = {}
    train_part: dict[str, int] = {}
    seen: set[int] = set()
    unused = 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        part = part_of(name)
        per_part[part] = per_part.get(part, 0) + p.numel()
        if p.requires_grad:
            train_part[part] = train_part.get(part, 0) + p.numel()
            unused += p.numel() if name.startswith(UNUSED_PREFIXES) else 0
    return ParamCounts(total=sum(per_part.values()), trainable=sum(train_part.values()),
                       per_part=per_part, trainable_per_part=train_part,
                       llm_layer_matrices=_base_matrices(model.llm_body().layers[0]),
                       lm_head_trainable=bool(model.lm_head_weight.requires_grad), unused_trainable=unused)


def _base_matrices(layer: nn.Module) -> int:
    """Weights of the decoder layer's projections (LoRA matrices excluded)."""
    total = 0
    for name, p in layer.named_parameters():
        if p.ndim == 2 and ".lora_" not in name:
            total += p.numel()
    return total


def static_terms(pc: ParamCounts, cfg: ModelConfig, opts: PlanOptions) -> dict[str, float]:
    """Weights, gradients, optimizer states and autocast weight copies (bytes per rank)."""
    n = opts.gpus
    bf16 = opts.dtype == "bf16"
    w_bytes = 2 if (bf16 and opts.zero >= 1) else 4
    weights = w_bytes * pc.total / (n if opts.zero == 3 else 1)
    frozen_bf16 = opts.frozen_dtype == "bf16"
    if frozen_bf16:  # zero 0: trainable fp32, frozen bf16
        weights = 4 * pc.trainable + 2 * (pc.total - pc.trainable)
    grads = w_bytes * pc.updated / (n if opts.zero >= 2 else 1)
    opt_elems = pc.updated / (n if opts.zero >= 1 else 1)
    optimizer = 8 * opt_elems + (4 * opt_elems if w_bytes == 2 else 0)  # moments (+ fp32 master)
    terms = {"weights": weights, "gradients": grads, "optimizer": optimizer}
    if opts.zero >= 1:  # gradient buckets (and ZeRO-3 prefetch) of conf/deepspeed
        terms["zero_buffers"] = w_bytes * (ZERO_BUCKET_ELEMENTS + (ZERO3_PREFETCH_ELEMENTS if opts.zero == 3 else 0))
    if bf16 and opts.zero == 0:
        # autocast: every matrix a matmul uses is cast to bf16; autograd keeps the cast while
        # backward needs it (all layers, or one recomputed layer with checkpointing), and the
        # trainable ones stay in autocast's cache until the forward ends anyway.
        layers = 1 if cfg.llm.activation_checkpointing else cfg.llm.num_layers
        llm_copies = 2 * pc.llm_layer_matrices * layers
        if frozen_bf16 and "llm" not in cfg.trainable:
            llm_copies = 0  # the frozen LLM matrices are bf16 already: autocast makes no copies
        other = 2 * (pc.trainable_per_part.get("encoder", 0) + pc.trainable_per_part.get("adapter", 0)
                     + pc.trainable_per_part.get("lora", 0))
        terms["autocast_copies"] = llm_copies + other
    return terms


def plan_memory(cfg: ModelConfig, opts: PlanOptions, params: ParamCounts | None = None) -> Plan:
    """The per-rank peak estimate for ``cfg`` (the model section) under ``opts``."""
    opts.validate()
    eff = effective_model(cfg, opts)
    pc = params or count_params(eff)
    terms = static_terms(pc, eff, opts)
    # the residual stream is fp32 when autocast runs over fp32 LLM weights
    llm_bf16 = opts.frozen_dtype == "bf16" and "llm" not in eff.trainable
    terms.update(activation_terms(eff, opts.workload, opts.dtype, residual_fp32=opts.zero == 0 and not llm_bf16,
                                  trainable=pc.trainable_per_part, lm_head_trainable=pc.lm_head_trainable))
    plan = Plan(pc, opts, eff, terms, {})
    if opts.device != "cpu":
        plan.allowances = {"cuda_context": CUDA_CONTEXT_BYTES, "fragmentation": FRAGMENTATION * plan.allocated}
    return plan


def candidate_options(base: PlanOptions) -> list[tuple[str, PlanOptions]]:
    """Variants worth trying when the base plan does not fit: checkpointing, LoRA, ZeRO stages
    (needs N > 1 to shard, except the bf16 weights of stage >= 1), smaller micro batches."""
    out: list[tuple[str, PlanOptions]] = [("as given", base)]

    def add(name: str, **changes) -> None:
        if changes.get("zero", 0):  # DeepSpeed picks its own weight dtype
            changes["frozen_dtype"] = "fp32"
        out.append((name, dataclasses.replace(base, **changes)))

    add("+ llm checkpointing", llm_checkpointing=True)
    add("+ lora", lora=True)
    add("+ lora + llm checkpointing", lora=True, llm_checkpointing=True)
    for z in (1, 2, 3):
        if z != base.zero:
            add(f"zero {z}", zero=z)
            add(f"zero {z} + llm checkpointing", zero=z, llm_checkpointing=True)
            add(f"zero {z} + lora + llm checkpointing", zero=z, lora=True, llm_checkpointing=True)
    for div in (2, 4):
        add(f"micro batch / {div} + llm checkpointing", llm_checkpointing=True,
            workload=base.workload.scaled(1.0 / div))
    return out


def fitting_options(cfg: ModelConfig, base: PlanOptions, budget_gb: float) -> list[tuple[str, float, bool]]:
    """(name, planned total GB, fits) for every candidate of :func:`candidate_options`."""
    rows = []
    cache: dict[tuple, ParamCounts] = {}
    done: set[tuple] = set()
    for name, opts in candidate_options(base):
        eff = effective_model(cfg, opts)
        same = (eff.lora.enable, eff.llm.activation_checkpointing, opts.zero, opts.workload.examples)
        if same in done:  # e.g. "+ lora" when the config already has LoRA
            continue
        done.add(same)
        key = (eff.lora.enable, tuple(eff.trainable))
        if key not in cache:
            cache[key] = count_params(eff)
        plan = plan_memory(cfg, opts, cache[key])
        rows.append((name, plan.total / GB, plan.total / GB <= budget_gb))
    return rows


def format_plan(plan: Plan) -> str:
    """A human-readable breakdown table (GB = 1e9 bytes)."""
    pc, o = plan.params, plan.options
    lines = [f"parameters: {pc.total:,} total, {pc.trainable:,} trainable",
             "  " + ", ".join(f"{k} {v:,} ({pc.trainable_per_part.get(k, 0):,} trainable)"
                              for k, v in sorted(pc.per_part.items())),
             f"options: zero {o.zero}, gpus {o.gpus}, dtype {o.dtype}, lora {plan.model.lora.enable}, "
             f"llm checkpointing {plan.model.llm.activation_checkpointing}, encoder checkpointing "
             f"{plan.model.encoder.activation_checkpointing}, device {o.device}, frozen weights {o.frozen_dtype}",
             f"workload: {o.workload.describe()}",
             f"{'term':<24}{'GB':>10}"]
    for k, v in plan.terms.items():
        phase = " (forward peak)" if k in FORWARD_ONLY else " (backward peak)" if k in BACKWARD_ONLY else ""
        lines.append(f"{k:<24}{v / GB:>10.3f}{phase}")
    lines.append(f"{'allocated peak':<24}{plan.allocated / GB:>10.3f}  (shared terms + the larger phase)")
    for k, v in plan.allowances.items():
        lines.append(f"{k + ' (allowance)':<24}{v / GB:>10.3f}")
    lines.append(f"{'total':<24}{plan.total / GB:>10.3f}")
    return "\n".join(lines)
