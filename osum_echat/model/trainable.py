"""Which parameters train (per stage, from config) and LoRA through the PEFT API."""

from __future__ import annotations

import logging

from torch import nn

from osum_echat.model.config import TRAINABLE_PARTS, LoraConfig

logger = logging.getLogger(__name__)

# Top-level module names of each trainable part (released key prefixes).
PART_MODULES: dict[str, tuple[str, ...]] = {
    "encoder": ("encoder",),
    "adapter": ("down_sample_2", "speech_transformer", "speech_llama_proj", "ln_speech"),
    "llm": ("llama_model",),
    "speech": ("speech_token_emded", "speech_head"),
}


def is_lora_param(name: str) -> bool:
    return ".lora_" in name


def part_of(name: str) -> str:
    """The part a parameter name belongs to ('lora' for LoRA matrices)."""
    if is_lora_param(name):
        return "lora"
    top = name.split(".", 1)[0]
    for part, mods in PART_MODULES.items():
        if top in mods:
            return part
    raise KeyError(f"parameter {name} belongs to no trainable part")


def set_trainable(model: nn.Module, parts: list[str]) -> dict[str, int]:
    """requires_grad = True exactly for parameters of the listed parts.

    With LoRA on, 'llm' trains the full LLM (base weights too) and 'lora' only the LoRA
    matrices. Returns trainable parameter counts per part (logged).
    """
    bad = [p for p in parts if p not in TRAINABLE_PARTS]
    if bad:
        raise ValueError(f"unknown trainable part(s) {bad}; choose from {list(TRAINABLE_PARTS)}")
    wanted = set(parts)
    counts = {p: 0 for p in TRAINABLE_PARTS}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        part = part_of(name)
        on = part in wanted or (part == "lora" and "llm" in wanted)
        p.requires_grad_(on)
        if on and id(p) not in seen:
            seen.add(id(p))
            counts[part] += p.numel()
    logger.info("trainable parameters: %s", {k: v for k, v in counts.items() if v})
    return counts


def apply_lora(model: nn.Module, cfg: LoraConfig) -> None:
    """Wrap ``model.llama_model`` with PEFT LoRA (keys become ``llama_model.base_model.model.*``,
    as in upstream's LoRA variant)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        task_type="CAUSAL_LM", r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
        target_modules=list(cfg.targets),
    )
    model.llama_model = get_peft_model(model.llama_model, peft_cfg)


def merge_lora(model: nn.Module) -> None:
    """Fold LoRA into the base weights; the LLM gets plain Qwen2 key names again."""
    llm = model.llama_model
    if not hasattr(llm, "merge_and_unload"):
        raise ValueError("the model has no LoRA to merge")
    model.llama_model = llm.merge_and_unload()
