"""Conformer encoder of the CosyVoice v1 flow model.

WeNet/ESPnet layout: a linear input layer with ESPnet-style relative positional encoding
(positions ``T-1 .. -(T-1)``), pre-norm blocks of relative-position multi-head self-attention
and a position-wise feed-forward (no macaron, no convolution module), then a final LayerNorm.
Parameter names follow the released ``flow.pt`` (``encoder.embed.out.0``,
``encoder.encoders.{i}.self_attn.linear_pos``, ``pos_bias_u`` ...).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from osum_echat.token2wav.config import EncoderConfig

_ACTIVATIONS = {"swish": nn.SiLU, "silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


def pad_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, T)`` bool mask, True on valid positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class RelPositionalEncoding(nn.Module):
    """ESPnet relative positional encoding: scales ``x`` by sqrt(d) and returns ``(1, 2T-1, d)``
    sinusoids for relative positions ``T-1, T-2, ..., -(T-1)`` (no parameters)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)

    def positions(self, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        pos = torch.arange(size - 1, -size, -1, device=device, dtype=torch.float32)[:, None]
        div = torch.exp(
            torch.arange(0, self.d_model, 2, device=device, dtype=torch.float32) * -(math.log(10000.0) / self.d_model)
        )
        pe = torch.zeros(2 * size - 1, self.d_model, device=device)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        return pe.unsqueeze(0).to(dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: ``(B, T, D)`` -> (scaled x, pos_emb ``(1, 2T-1, D)``)."""
        return x * self.xscale, self.positions(x.size(1), x.device, x.dtype)


class LinearInput(nn.Module):
    """``embed``: Linear -> LayerNorm -> Dropout, then the positional encoding."""

    def __init__(self, idim: int, odim: int) -> None:
        super().__init__()
        self.out = nn.Sequential(nn.Linear(idim, odim), nn.LayerNorm(odim, eps=1e-5), nn.Dropout(0.0))
        self.pos_enc = RelPositionalEncoding(odim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pos_enc(self.out(x))


class RelPositionAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL style relative positions (ESPnet shift)."""

    def __init__(self, n_head: int, n_feat: int) -> None:
        super().__init__()
        self.h, self.d_k = n_head, n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    @staticmethod
    def rel_shift(scores: torch.Tensor) -> torch.Tensor:
        """``(B, H, T, 2T-1)`` scores over relative positions -> ``(B, H, T, T)`` with entry
        ``[i, j]`` taken at relative position ``i - j`` (column ``T-1-i+j``)."""
        t = scores.size(2)
        idx = (t - 1) - torch.arange(t, device=scores.device)[:, None] + torch.arange(t, device=scores.device)[None, :]
        return scores.gather(-1, idx.expand(scores.size(0), scores.size(1), t, t))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        """x ``(B, T, D)``, mask ``(B, 1, T)`` bool (True = keep), pos_emb ``(1, 2T-1, D)``."""
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        bd = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)))
        scores = (ac + bd) / math.sqrt(self.d_k)
        keep = mask.unsqueeze(1)  # (B, 1, 1, T)
        scores = scores.masked_fill(~keep, float("-inf"))
        attn = torch.softmax(scores, dim=-1).masked_fill(~keep, 0.0)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, self.h * self.d_k)
        return self.linear_out(out)


class FeedForward(nn.Module):
    """``w_2(act(w_1(x)))``."""

    def __init__(self, idim: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden)
        self.w_2 = nn.Linear(hidden, idim)
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.activation(self.w_1(x)))


class ConformerLayer(nn.Module):
    """Pre-norm block: x + MHSA(LN(x)); x + FFN(LN(x))."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        d = cfg.output_size
        self.self_attn = RelPositionAttention(cfg.attention_heads, d)
        self.feed_forward = FeedForward(d, cfg.linear_units, cfg.activation)
        self.norm_ff = nn.LayerNorm(d, eps=1e-12)
        self.norm_mha = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), mask, pos_emb)
        return x + self.feed_forward(self.norm_ff(x))


class ConformerEncoder(nn.Module):
    """``forward(xs (B, T, input_size), lens (B,)) -> (hidden (B, T, output_size), lens)``."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.embed = LinearInput(cfg.input_size, cfg.output_size)
        self.encoders = nn.ModuleList(ConformerLayer(cfg) for _ in range(cfg.num_blocks))
        self.after_norm = nn.LayerNorm(cfg.output_size, eps=1e-5)

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = pad_mask(lens, xs.size(1)).unsqueeze(1)  # (B, 1, T)
        xs, pos_emb = self.embed(xs)
        for layer in self.encoders:
            xs = layer(xs, mask, pos_emb)
        return self.after_norm(xs), lens


__all__ = ["ConformerEncoder", "pad_mask"]
