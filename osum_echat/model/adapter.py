"""The adapter between encoder and LLM (released names ``down_sample_2``, ``speech_transformer``,
``speech_llama_proj``): causal conv x4 downsampling (50 Hz -> 12.5 Hz), a 4-block transformer
(ReLU FFN, interleaved sinusoid with x sqrt(d) input scale), then a Linear to the LLM width."""

from __future__ import annotations

import torch
from torch import nn

from osum_echat.model.config import AdapterConfig
from osum_echat.model.encoder import lengths_to_mask
from osum_echat.model.transformer import PositionalEncoding, TransformerBlock, run_blocks


class CausalConvDownsampler(nn.Module):
    """Three causal stages [left-pad 2, Conv1d k3, GELU] with strides 1, 2, 2 (x4 overall).

    Causality means right padding never leaks into valid frames, so no masking is needed.
    """

    def __init__(self, d_model: int):
        super().__init__()
        layers: list[nn.Module] = []
        for stride in (1, 2, 2):
            layers += [nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(d_model, d_model, 3, stride=stride), nn.GELU()]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D), lengths (B,) -> (B, ceil(ceil(T/2)/2), D), lengths."""
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return y, (((lengths + 1) // 2) + 1) // 2


class LinearInput(nn.Module):
    """Linear -> LayerNorm -> Dropout, then the positional encoding (names ``out.0/1``, ``pos_enc``)."""

    def __init__(self, d_model: int, max_positions: int, dropout: float, positional_dropout: float):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(d_model, d_model), nn.LayerNorm(d_model, eps=1e-5), nn.Dropout(dropout))
        self.pos_enc = PositionalEncoding(d_model, max_positions, positional_dropout, style="interleaved")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_enc(self.out(x))


class SpeechTransformer(nn.Module):
    """Small pre-norm transformer over the downsampled frames."""

    def __init__(self, cfg: AdapterConfig):
        super().__init__()
        self.embed = LinearInput(cfg.d_model, cfg.max_positions, cfg.dropout, cfg.positional_dropout)
        self.encoders = nn.ModuleList(
            TransformerBlock(cfg.d_model, cfg.num_heads, cfg.ffn_dim, nn.ReLU(), cfg.dropout,
                             cfg.attention_dropout, key_bias=True)
            for _ in range(cfg.num_layers)
        )
        self.after_norm = nn.LayerNorm(cfg.d_model, eps=1e-5)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), lengths (B,) -> (B, T, D)."""
        x = self.embed(x)
        x = run_blocks(self.encoders, x, lengths_to_mask(lengths, x.shape[1]), checkpointing=False)
        return self.after_norm(x)
