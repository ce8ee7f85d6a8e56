"""Pre-norm transformer pieces shared by the speech encoder and the adapter transformer.

Parameter names follow the released checkpoints (WeNet naming): ``self_attn.linear_{q,k,v,out}``,
``feed_forward.w_{1,2}``, ``norm1``, ``norm2``. Attention uses PyTorch SDPA with a key-padding
mask (full bidirectional context).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


class MultiHeadAttention(nn.Module):
    """Bidirectional multi-head self-attention with a key-padding mask.

    ``key_bias=False`` reproduces Whisper's bias-free key projection.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, key_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model, bias=key_bias)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), key_mask (B, T) bool (True = valid frame) -> (B, T, D)."""
        b, t, _ = x.shape

        def heads(proj: nn.Linear) -> torch.Tensor:
            return proj(x).view(b, t, self.num_heads, self.d_k).transpose(1, 2)

        q, k, v = heads(self.linear_q), heads(self.linear_k), heads(self.linear_v)
        mask = key_mask[:, None, None, :]  # (B, 1, 1, T) broadcast over heads and queries
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.linear_out(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    """w_2(dropout(act(w_1(x))))."""

    def __init__(self, d_model: int, ffn_dim: int, activation: nn.Module, dropout: float):
        super().__init__()
        self.w_1 = nn.Linear(d_model, ffn_dim)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)
        self.w_2 = nn.Linear(ffn_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + MHA(LN(x)); x + FFN(LN(x)) (LayerNorm eps 1e-5)."""

    def __init__(
        self, d_model: int, num_heads: int, ffn_dim: int, activation: nn.Module,
        dropout: float, attention_dropout: float, key_bias: bool = True,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, attention_dropout, key_bias)
        self.feed_forward = FeedForward(d_model, ffn_dim, activation, dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-5)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-5)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.norm1(x), key_mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


def run_blocks(
    blocks: nn.ModuleList, x: torch.Tensor, key_mask: torch.Tensor, checkpointing: bool
) -> torch.Tensor:
    """Apply blocks in order, with non-reentrant activation checkpointing when asked (train)."""
    for block in blocks:
        if checkpointing and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(block, x, key_mask, use_reentrant=False)
        else:
            x = block(x, key_mask)
    return x


def whisper_sinusoids(length: int, channels: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Whisper's table (length, channels): first half sin, second half cos (not interleaved)."""
    half = channels // 2
    inc = math.log(10000.0) / (half - 1)
    inv = torch.exp(-inc * torch.arange(half, device=device, dtype=torch.float32))
    t = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([t.sin(), t.cos()], dim=1).to(dtype)


def interleaved_sinusoids(length: int, channels: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The Transformer/ESPnet table (length, channels): even dims sin, odd dims cos."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, channels, 2, device=device, dtype=torch.float32)
                    * -(math.log(10000.0) / channels))
    pe = torch.zeros(length, channels, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.to(dtype)


class PositionalEncoding(nn.Module):
    """x * scale + table[:T], then dropout. The table is computed on the fly (no buffer), so
    the released checkpoints' ``*.pos_enc.pe`` entries are derived data, not weights."""

    def __init__(self, d_model: int, max_len: int, dropout: float, style: str):
        super().__init__()
        if style not in ("whisper", "interleaved"):
            raise ValueError(f"unknown positional encoding style {style!r}")
        self.d_model = d_model
        self.max_len = max_len
        self.style = style
        self.scale = 1.0 if style == "whisper" else math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout)

    def table(self, length: int, device=None, dtype=torch.float32) -> torch.Tensor:
        fn = whisper_sinusoids if self.style == "whisper" else interleaved_sinusoids
        return fn(length, self.d_model, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence of {t} frames exceeds the positional table ({self.max_len})")
        return self.dropout(x * self.scale + self.table(t, x.device, x.dtype))
