"""Checkpoints: the released flat ``.pt`` layout, our own checkpoints, and initialisation from
openai-whisper / HF Whisper (encoder) and HF Qwen2 (LLM) weights.

Loading is strict: every model key must be provided and every file key must be used, apart
from an explicit allow-list (derived positional tables, upstream's top-level aliases of the
LLM embedding/head, a tied ``lm_head`` absent from the file, fresh LoRA matrices when a
plain checkpoint is loaded into a LoRA model, and the named upstream keys that no model of
ours uses: OSUM's never-applied ``speaker_head``). Anything else raises
:class:`CheckpointError` naming the keys. The aliases are checked against the real tensors
whether the LLM keys are plain or PEFT-wrapped (``llama_model.base_model.model.*``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Keys of upstream files that are derived data or aliases, not weights of their own.
DERIVED_KEYS = ("encoder.embed.pos_enc.pe", "speech_transformer.embed.pos_enc.pe")
ALIASES = {"embed_tokens.weight": "llama_model.model.embed_tokens.weight",
           "lm_head.weight": "llama_model.lm_head.weight"}
TIED_HEAD = "llama_model.lm_head.weight"
# Upstream keys of weights that exist in released files but are never used by upstream's own
# forward or generate (OSUM's ``speaker_head``, a leftover of a speech-output experiment).
IGNORED_UPSTREAM_KEYS = ("speaker_head.weight", "speaker_head.bias")


class CheckpointError(RuntimeError):
    """A checkpoint that does not fit the model (names the offending keys)."""


def _plain_name(model_key: str) -> str:
    """PEFT-wrapped LLM key -> the plain Qwen2 name the released files use."""
    key = model_key.replace("llama_model.base_model.model.", "llama_model.")
    return key.replace(".base_layer.", ".")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load with ``weights_only=True`` (memory-mapped when the format allows).

    Accepts a flat state dict, or a dict holding one under 'model' / 'module' / 'state_dict'
    (DeepSpeed's ``mp_rank_00_model_states.pt``); a ``module.`` prefix is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) format cannot be mmapped
        obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("module", "model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``sd`` into ``model`` under the allow-list rules; casts to the model's dtypes."""
    target = model.state_dict()
    by_plain = {_plain_name(k): k for k in target}
    tied = getattr(getattr(model, "llama_model", None), "config", None)
    tied = bool(getattr(tied, "tie_word_embeddings", False))
    file_by_plain = {_plain_name(k): k for k in sd}
    mapped: dict[str, torch.Tensor] = {}
    unexpected, mismatched = [], []
    ignored = [k for k in sd if k in IGNORED_UPSTREAM_KEYS and k not in target]
    if ignored:
        logger.info("%s: ignoring unused upstream keys %s", source, ignored)
    for key, value in sd.items():
        if key in DERIVED_KEYS or key in ignored:
            continue
        if key in ALIASES:
            real = file_by_plain.get(ALIASES[key])
            other = sd.get(real) if real is not None else None
            if other is not None and (other.shape != value.shape or not torch.equal(other, value)):
                raise CheckpointError(f"{source}: alias {key} differs from {ALIASES[key]}")
            if other is not None:
                continue
            key = ALIASES[key]
        mk = key if key in target else by_plain.get(key)
        if mk is None:
            unexpected.append(key)
            continue
        if tuple(target[mk].shape) != tuple(value.shape):
            mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(target[mk].shape)}")
            continue
        mapped[mk] = value
    missing = [k for k in target if k not in mapped
               and not (".lora_" in k)
               and not (tied and _plain_name(k) == TIED_HEAD)]
    if unexpected or missing or mismatched:
        parts = []
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                shown = ", ".join(keys[:12]) + (f" ... (+{len(keys) - 12} more)" if len(keys) > 12 else "")
                parts.append(f"{len(keys)} {title} key(s): {shown}")
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(parts))
    result = model.load_state_dict(mapped, strict=False)
    left = [k for k in result.missing_keys if ".lora_" not in k and not (tied and _plain_name(k) == TIED_HEAD)]
    if left:
        raise CheckpointError(f"{source}: keys not loaded: {left[:12]}")


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a released / upstream-style / our own flat ``.pt`` strictly into ``model``."""
    load_state_dict_strict(model, read_state_dict(path), source=str(path))
    logger.info("loaded %s", path)


def save_checkpoint(model: nn.Module, path: str | Path, info: Mapping | None = None) -> None:
    """Flat state dict (released layout) written atomically, plus ``<path>.yaml`` with ``info``
    (resolved config, step, epoch, ...) when given."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(path)
    if info is not None:
        ytmp = path.with_suffix(".yaml.tmp")
        with open(ytmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(dict(info), f, sort_keys=False, allow_unicode=True)
        ytmp.replace(path.with_suffix(".yaml"))


# ------------------------------------------------------------------------------------------
# Encoder initialisation from Whisper
# ------------------------------------------------------------------------------------------
_OPENAI_BLOCK = [
    (r"attn\.query\.", "self_attn.linear_q."), (r"attn\.key\.", "self_attn.linear_k."),
    (r"attn\.value\.", "self_attn.linear_v."), (r"attn\.out\.", "self_attn.linear_out."),
    (r"attn_ln\.", "norm1."), (r"mlp\.0\.", "feed_forward.w_1."), (r"mlp\.2\.", "feed_forward.w_2."),
    (r"mlp_ln\.", "norm2."),
]
_HF_BLOCK = [
    (r"self_attn\.q_proj\.", "self_attn.linear_q."), (r"self_attn\.k_proj\.", "self_attn.linear_k."),
    (r"self_attn\.v_proj\.", "self_attn.linear_v."), (r"self_attn\.out_proj\.", "self_attn.linear_out."),
    (r"self_attn_layer_norm\.", "norm1."), (r"fc1\.", "feed_forward.w_1."), (r"fc2\.", "feed_forward.w_2."),
    (r"final_layer_norm\.", "norm2."),
]


def whisper_to_encoder_state(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """openai-whisper (``encoder.blocks.i...``) or HF (``model.encoder.layers.i...``) encoder
    weights -> our ``encoder.*`` names. Decoder weights and the positional table are dropped
    (the sinusoid is recomputed)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        k = key[len("model."):] if key.startswith("model.encoder.") else key
        if not k.startswith("encoder."):
            continue
        rest = k[len("encoder."):]
        if rest in ("positional_embedding", "embed_positions.weight"):
            continue
        if rest.startswith(("conv1.", "conv2.")):
            idx = "0" if rest.startswith("conv1.") else "2"
            out[f"encoder.embed.conv.{idx}.{rest[6:]}"] = value
            continue
        if rest.startswith(("ln_post.", "layer_norm.")):
            out["encoder.after_norm." + rest.split(".", 1)[1]] = value
            continue
        m = re.match(r"(blocks|layers)\.(\d+)\.(.*)", rest)
        if not m:
            raise CheckpointError(f"unrecognised Whisper encoder key {key}")
        table = _OPENAI_BLOCK if m.group(1) == "blocks" else _HF_BLOCK
        for pat, repl in table:
            if re.match(pat, m.group(3)):
                out[f"encoder.encoders.{m.group(2)}.{re.sub(pat, repl, m.group(3), count=1)}"] = value
                break
        else:
            raise CheckpointError(f"unrecognised Whisper encoder key {key}")
    return out


def read_whisper_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """An openai-whisper ``.pt`` ({'dims', 'model_state_dict'}) or an HF Whisper folder."""
    path = Path(path)
    if path.is_dir():
        from safetensors.torch import load_file

        files = sorted(path.glob("*.safetensors"))
        if files:
            sd: dict[str, torch.Tensor] = {}
            for f in files:
                sd.update(load_file(str(f)))
            return sd
        bins = sorted(path.glob("pytorch_model*.bin"))
        if not bins:
            raise FileNotFoundError(f"{path} has no *.safetensors or pytorch_model*.bin")
        sd = {}
        for f in bins:
            sd.update(torch.load(f, map_location="cpu", weights_only=True))
        return sd
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj.get("model_state_dict", obj)


def init_encoder_from_whisper(model: nn.Module, path: str | Path) -> None:
    """Initialise ``model.encoder`` from Whisper weights (strict over the encoder's keys)."""
    enc_sd = whisper_to_encoder_state(read_whisper_weights(path))
    sub = {k[len("encoder."):]: v for k, v in enc_sd.items()}
    want = model.encoder.state_dict()
    missing = sorted(set(want) - set(sub))
    extra = sorted(set(sub) - set(want))
    shape = [k for k in sub if k in want and tuple(sub[k].shape) != tuple(want[k].shape)]
    if missing or extra or shape:
        raise CheckpointError(f"Whisper weights at {path} do not fit the encoder: missing {missing[:8]}, "
                              f"unexpected {extra[:8]}, wrong shape {shape[:8]}")
    model.encoder.load_state_dict(sub)
    logger.info("encoder initialised from %s", path)


def init_llm_from_hf(model: nn.Module, folder: str | Path) -> None:
    """Copy the weights of an HF Qwen2 folder into ``model.llama_model`` (strict; before LoRA)."""
    from transformers import Qwen2ForCausalLM

    if hasattr(model.llama_model, "get_base_model"):
        raise CheckpointError("initialise the LLM before LoRA is applied (model.llm.init: pretrained)")
    src = Qwen2ForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    try:
        model.llama_model.load_state_dict(src.state_dict(), strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"LLM weights at {folder} do not fit the model: {err}") from None
    logger.info("LLM initialised from %s", folder)
