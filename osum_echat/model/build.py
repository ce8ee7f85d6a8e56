"""``build_model(cfg)``: the one place that turns a ModelConfig into an OsumEChat."""

from __future__ import annotations

import logging

import torch
from torch import nn

from osum_echat.model.adapter import CausalConvDownsampler, SpeechTransformer
from osum_echat.model.config import LLMConfig, ModelConfig
from osum_echat.model.encoder import WhisperEncoder
from osum_echat.model.osum_echat import OsumEChat
from osum_echat.model.trainable import apply_lora, set_trainable

logger = logging.getLogger(__name__)


def qwen2_config(cfg: LLMConfig):
    """A transformers ``Qwen2Config`` with exactly the configured architecture."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads, max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta, rms_norm_eps=cfg.rms_norm_eps,
        tie_word_embeddings=cfg.tie_word_embeddings, use_cache=True,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
        attn_implementation=cfg.attn_implementation,
    )


def build_llm(cfg: LLMConfig) -> nn.Module:
    """Qwen2ForCausalLM: random weights from the config, or pretrained weights from ``cfg.path``.

    Pretrained folders must agree with the configured architecture (checked, with the
    mismatching fields named).
    """
    from transformers import Qwen2ForCausalLM

    if cfg.init == "pretrained":
        from osum_echat.text.tokenizer import resolve_hf_folder

        folder = resolve_hf_folder(cfg.path)
        llm = Qwen2ForCausalLM.from_pretrained(str(folder), dtype=torch.float32,
                                               attn_implementation=cfg.attn_implementation)
        want = qwen2_config(cfg)
        bad = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                           "intermediate_size", "vocab_size", "tie_word_embeddings")
               if getattr(llm.config, k) != getattr(want, k)]
        if bad:
            raise ValueError(f"LLM at {folder} differs from model.llm config in: "
                             + ", ".join(f"{k} ({getattr(llm.config, k)} vs {getattr(want, k)})" for k in bad))
        return llm
    return Qwen2ForCausalLM(qwen2_config(cfg))


def build_model(cfg: ModelConfig, apply_trainable: bool = True) -> OsumEChat:
    """Build the full model in float32 (cast later for bf16 training/inference).

    Build on the meta device with ``with torch.device("meta"): build_model(cfg)`` to inspect
    the release architecture without allocating it.
    """
    enc = WhisperEncoder(cfg.encoder)
    llm = build_llm(cfg.llm)
    if cfg.llm.activation_checkpointing:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = OsumEChat(
        encoder=enc,
        down_sample_2=CausalConvDownsampler(cfg.adapter.d_model),
        speech_transformer=SpeechTransformer(cfg.adapter),
        speech_llama_proj=nn.Linear(cfg.adapter.d_model, cfg.llm.hidden_size),
        llm=llm,
        speech_token_num=cfg.speech_token_num,
        loss_chunk_size=cfg.loss_chunk_size,
        loss_norm=cfg.loss_norm,
        speech_loss_weight=cfg.speech_loss_weight,
        speech_input_noise=cfg.speech_input_noise,
        speech_head=cfg.speech_head,
    )
    # flash-attention takes no mask: packed and padded rows run padding-free (varlen)
    model.varlen_attention = cfg.llm.attn_implementation.startswith("flash_attention")
    if cfg.lora.enable:
        apply_lora(model, cfg.lora)
    if apply_trainable:
        set_trainable(model, cfg.trainable)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters counted once even when tied."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
