"""Whisper-medium-shaped speech encoder (the released ``encoder.*`` weights).

log-mel (B, T, 80) -> Conv1d(k3) GELU Conv1d(k3, stride 2) GELU -> + Whisper sinusoid ->
N pre-norm blocks (exact GELU FFN, bias-free keys) -> LayerNorm -> (B, ceil(T/2), D).
"""

from __future__ import annotations

import torch
from torch import nn

from osum_echat.model.config import EncoderConfig
from osum_echat.model.transformer import PositionalEncoding, TransformerBlock, run_blocks


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class ConvFrontEnd(nn.Module):
    """Two 1-D convolutions (the second with stride 2): 100 Hz -> 50 Hz."""

    def __init__(self, input_dim: int, d_model: int, max_positions: int, dropout: float):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(input_dim, d_model, kernel_size=3, padding=1), nn.GELU(),
            nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1), nn.GELU(),
        )
        self.pos_enc = PositionalEncoding(d_model, max_positions, dropout, style="whisper")

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv[1](self.conv[0](feats.transpose(1, 2)))  # (B, D, T)
        # Zero the first conv's output past each row's end so a padded row gives exactly the
        # frames it gives alone (the second conv would otherwise read padding activations).
        x = x * lengths_to_mask(lengths, x.shape[-1])[:, None, :].to(x.dtype)
        x = self.conv[3](self.conv[2](x)).transpose(1, 2)  # (B, ceil(T/2), D)
        out_lengths = (lengths + 1) // 2
        return self.pos_enc(x), out_lengths


class WhisperEncoder(nn.Module):
    """Interface shared by encoders: ``forward(feats, lengths) -> (hidden, lengths)``."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = ConvFrontEnd(cfg.input_dim, cfg.d_model, cfg.max_positions, cfg.positional_dropout)
        self.encoders = nn.ModuleList(
            TransformerBlock(cfg.d_model, cfg.num_heads, cfg.ffn_dim, nn.GELU(), cfg.dropout,
                             cfg.attention_dropout, key_bias=False)
            for _ in range(cfg.num_layers)
        )
        self.after_norm = nn.LayerNorm(cfg.d_model, eps=1e-5)
        self.activation_checkpointing = cfg.activation_checkpointing

    @property
    def output_dim(self) -> int:
        return self.cfg.d_model

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F) zero-padded, lengths (B,) -> hidden (B, ceil(T/2), D), lengths (B,)."""
        x, lengths = self.embed(feats, lengths)
        mask = lengths_to_mask(lengths, x.shape[1])
        x = run_blocks(self.encoders, x, mask, self.activation_checkpointing and self.training)
        return self.after_norm(x), lengths
