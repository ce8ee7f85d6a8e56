"""Activation memory of one training micro-batch: what autograd keeps for backward.

Per-token formulas (bytes), with ``a`` the compute dtype's size (2 for bf16, 4 for fp32) and
``r`` the residual stream's (4 when bf16 autocast runs over fp32 weights, else ``a``):

Qwen2 decoder layer (hidden ``h``, intermediate ``i``, heads ``nh``, kv width ``kv``):

    2 RMSNorms            2 x (4h + r h)        fp32 input/copy + normalized (the latter only
                                               when the norm weights train, i.e. not with LoRA)
    linear inputs         (3 + 2) a h           q/k/v and gate/up each keep their own bf16
                                               cast under autocast; (1 + 1) a h otherwise
    attention             2 a h + 2 a kv + 4 nh  rotated q, output, rotated k and v, log-sum-exp
                                               (SDPA flash/efficient kernels: no L x L matrix)
      (several sequences per row, SDPA: 4 a h + a L: k/v repeated to all heads, the output
       copied for o_proj, and the row's L x L float mask)
    SwiGLU MLP            4 a i                 gate, up, SiLU output, product
    LoRA (per target)     a in (x2 with dropout) + a rank

With activation checkpointing a layer keeps only its input (``r h``) and one layer is
recomputed at a time during backward (the working set). Encoder / adapter blocks (LayerNorm,
MHA with a key mask, GELU/ReLU FFN, dropout masks) follow the same pattern; a frozen part
keeps nothing (no autograd there) and needs one block's forward as working memory.

The loss (``osum_echat/model/loss.py``) makes one chunk of ``min(chunk, M)`` rows of fp32 text
+ speech logits at a time (``M`` supervised positions), and allocates fp32 gradients of the
text/speech heads in the forward pass when they train.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from osum_echat.model.batch import speech_embed_length
from osum_echat.model.config import ModelConfig

FRAMES_PER_SECOND = 100  # 10 ms log-mel hop


@dataclass
class Workload:
    """One micro-batch: ``examples`` conversations, each with ``audio_s`` seconds of speech
    input, ``prompt_tokens`` other unsupervised positions and ``reply_tokens`` supervised ones."""

    audio_s: float = 30.0
    prompt_tokens: int = 40
    reply_tokens: int = 400
    examples: float = 1.0
    packed: bool = False  # all examples on one row (else one right-padded row each)

    @property
    def audio_frames(self) -> int:
        return int(round(self.audio_s * FRAMES_PER_SECOND))

    @property
    def positions_per_example(self) -> int:
        audio = speech_embed_length(self.audio_frames) + 2 if self.audio_frames else 0
        return audio + self.prompt_tokens + self.reply_tokens

    @property
    def tokens(self) -> float:
        """LLM positions in the micro-batch."""
        return self.positions_per_example * self.examples

    @property
    def supervised(self) -> float:
        return self.reply_tokens * self.examples

    @property
    def rows(self) -> float:
        return 1.0 if self.packed else self.examples

    @property
    def row_length(self) -> float:
        return self.tokens / self.rows

    def scaled(self, factor: float) -> "Workload":
        return dataclasses.replace(self, examples=self.examples * factor)

    def with_tokens(self, tokens: int) -> "Workload":
        """As many examples of this shape as fill ``tokens`` LLM positions (fractional)."""
        return dataclasses.replace(self, examples=tokens / self.positions_per_example)

    def describe(self) -> str:
        return (f"{self.examples:g} example(s) x ({self.audio_s:g} s speech -> "
                f"{speech_embed_length(self.audio_frames)} adapter frames, {self.prompt_tokens} prompt, "
                f"{self.reply_tokens} supervised) = {self.tokens:,.0f} LLM positions")


def masked_attention(cfg: ModelConfig, work: Workload) -> bool:
    """Whether the LLM gets a 4-D mask: several sequences on a row (packing, or a padding tail
    that restarts its positions) with SDPA/eager; flash-attention 2 runs them varlen."""
    return work.examples > 1 and not cfg.llm.attn_implementation.startswith("flash_attention")


def llm_layer_bytes(cfg: ModelConfig, a: int, r: int, autocast: bool, work: Workload) -> float:
    """Saved bytes per token of one decoder layer (no checkpointing)."""
    llm = cfg.llm
    h, i, nh = llm.hidden_size, llm.intermediate_size, llm.num_heads
    kv = llm.num_kv_heads * (h // nh)
    # RMSNorm keeps its fp32 input (or copy); the normalized tensor only when its weight trains
    norm = 4 * h + (r * h if "llm" in cfg.trainable else 0)
    norms = 2 * norm
    inputs = (5 if autocast else 2) * a * h
    if masked_attention(cfg, work):
        # with a mask, transformers repeats k/v to all heads (no GQA kernel), the output is
        # copied for o_proj, and the (rows, 1, L, L) mask (compute dtype) is kept per layer
        attn = 4 * a * h + a * work.row_length
    else:
        attn = 2 * a * h + 2 * a * kv + 4 * nh
    total = norms + inputs + attn + 4 * a * i
    if cfg.lora.enable:
        dims = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": h, "gate_proj": h, "up_proj": h, "down_proj": i}
        per_in = 2 if cfg.lora.dropout > 0 else 1
        total += sum(per_in * a * dims[t] + a * cfg.lora.r for t in cfg.lora.targets if t in dims)
    return total


def block_bytes(d: int, ffn: int, a: int, r: int, autocast: bool, dropout: float) -> float:
    """Saved bytes per frame of one encoder/adapter block (pre-norm MHA + FFN)."""
    total = 2 * r * d  # LayerNorm inputs
    total += (3 if autocast else 1) * a * d + 3 * a * d + 2 * a * d  # q/k/v inputs, q k v, out, out-proj in
    total += a * d + 2 * a * ffn  # FFN input, w1 output, activation output
    if dropout > 0:  # masks (1 byte) + outputs kept for the next op
        total += 2 * d + ffn + a * ffn
    return total


def activation_terms(cfg: ModelConfig, work: Workload, dtype: str, residual_fp32: bool,
                     trainable: dict[str, int], lm_head_trainable: bool) -> dict[str, float]:
    """Activation-side terms of the plan (bytes), keyed like the breakdown table."""
    bf16 = dtype == "bf16"
    a = 2 if bf16 else 4
    r = 4 if (residual_fp32 or not bf16) else 2
    autocast = bf16 and residual_fp32
    llm = cfg.llm
    h, i = llm.hidden_size, llm.intermediate_size
    t = work.tokens
    layer = llm_layer_bytes(cfg, a, r, autocast, work)
    ckpt = llm.activation_checkpointing
    per_layer = r * h if ckpt else layer
    final_norm = 4 * h + (r * h if "llm" in cfg.trainable else 0)
    out = {"activations_llm": t * (llm.num_layers * per_layer + final_norm)}
    # speech side: frames per micro-batch at the encoder (50 Hz) and adapter (12.5 Hz)
    enc_t = (work.audio_frames + 1) // 2 * work.examples
    ad_t = speech_embed_length(work.audio_frames) * work.examples
    enc, ad = cfg.encoder, cfg.adapter
    enc_block = block_bytes(enc.d_model, enc.ffn_dim, a, r, autocast, enc.dropout)
    ad_block = block_bytes(ad.d_model, ad.ffn_dim, a, r, autocast, ad.dropout)
    work_set = t * (2 * r * h + 2 * a * i) + (t * layer if ckpt else 0.0)
    if "llm" in cfg.trainable:  # the input embedding's backward makes a dense (V_text x h) gradient
        work_set += 4 * llm.vocab_size * h
    enc_train, ad_train = trainable.get("encoder", 0) > 0, trainable.get("adapter", 0) > 0
    if enc_train:
        per = r * enc.d_model if enc.activation_checkpointing else enc_block
        front = work.audio_frames * work.examples * enc.input_dim * 4 + 3 * enc_t * a * enc.d_model
        out["activations_encoder"] = enc_t * enc.num_layers * per + front
        if enc.activation_checkpointing:
            work_set = max(work_set, enc_t * enc_block)
    else:  # no autograd: one block's forward at a time
        work_set = max(work_set, enc_t * (4 * enc.d_model + 2 * enc.ffn_dim) * a)
    if enc_train or ad_train:
        convs = 4.25 * enc_t * a * ad.d_model  # padded inputs and GELU inputs of the 3 stages
        out["activations_adapter"] = convs + ad_t * (ad.num_layers * ad_block + 4 * a * ad.d_model)
    m = work.supervised
    c = min(cfg.loss_chunk_size, m)
    v_text, v_speech = llm.vocab_size, cfg.speech_token_num
    logits = c * (v_text + v_speech) * (4 + (0 if r == 4 else a))  # fp32 chunk (+ compute-dtype copy)
    # transient: one chunk of fp32 logits (+ its compute-dtype copy), the selected rows, and
    # the chunk's text-head gradient product (V_text x h) before it is added to the sum
    out["loss_logits_chunk"] = logits + m * h * r + (4 * v_text * h if lm_head_trainable else 0)
    # kept from forward to backward: gradients for the hidden rows and fp32 head gradients
    out["loss_saved_grads"] = m * h * r + (4 * v_text * h if lm_head_trainable else 0) + (
        4 * v_speech * h if trainable.get("speech") else 0)
    out["backward_working_set"] = work_set
    return out
