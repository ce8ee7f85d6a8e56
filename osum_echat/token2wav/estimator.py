"""The flow-matching velocity estimator: a 1-D U-Net with transformer blocks (Matcha-TTS style).

Input is ``x ⊕ mu ⊕ spk ⊕ cond`` (4 x 80 channels), a sinusoidal embedding of the flow time
``t`` goes through a two-layer MLP and is added inside every ResNet block. Layout and
parameter names follow ``decoder.estimator.*`` in the released ``flow.pt``:
``down_blocks.{i}.{0: resnet, 1: transformer blocks, 2: down/conv}``, ``mid_blocks.{i}.{0,1}``,
``up_blocks.{i}.{0,1,2}``, ``final_block``, ``final_proj``, ``time_mlp.linear_{1,2}``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from osum_echat.token2wav.config import EstimatorConfig


class SinusoidalTimeEmbedding(nn.Module):
    """``t (B,)`` in [0, 1] -> ``(B, dim)`` sin/cos features of ``1000 * t``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("time embedding dim must be even")
        self.dim = dim

    def forward(self, t: torch.Tensor, scale: float = 1000.0) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        arg = scale * t.float().reshape(-1, 1) * freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class TimestepMLP(nn.Module):
    """``linear_1 -> SiLU -> linear_2``."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(t)))


class Block1D(nn.Module):
    """Masked Conv1d(k3) -> GroupNorm(8) -> Mish; ``block.{0,1}`` hold the weights."""

    def __init__(self, dim: int, dim_out: int, groups: int = 8) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(dim, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out), nn.Mish())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x * mask) * mask


class ResnetBlock1D(nn.Module):
    """Two Block1D with the time embedding added in between, plus a 1x1 residual conv."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block1D(dim, dim_out)
        self.block2 = Block1D(dim_out, dim_out)
        self.res_conv = nn.Conv1d(dim, dim_out, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        """x ``(B, C, T)``, mask ``(B, 1, T)``, t_emb ``(B, E)``."""
        h = self.block1(x, mask) + self.mlp(t_emb).unsqueeze(-1)
        return self.block2(h, mask) + self.res_conv(x * mask)


class Downsample1D(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1D(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Attention(nn.Module):
    """Self-attention with bias-free q/k/v and ``to_out.0`` output projection."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x ``(B, T, C)``; bias ``(B, 1, 1, T)`` additive (0 keep, -inf-ish drop) or None."""
        b, t, _ = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, -1).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out[0](out.transpose(1, 2).reshape(b, t, -1))


class GELUProj(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x))


class FeedForward(nn.Module):
    """``net = [GELU(proj), Dropout, Linear]`` with a 4x hidden size."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GELUProj(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + feed-forward (``norm1``, ``attn1``, ``norm3``, ``ff``)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), bias)
        return x + self.ff(self.norm3(x))


def _attn_bias(mask: torch.Tensor) -> torch.Tensor | None:
    """``(B, 1, T)`` float mask -> additive key bias ``(B, 1, 1, T)``; None when nothing is masked."""
    if bool((mask > 0).all()):
        return None
    return ((1.0 - mask) * -1.0e10).unsqueeze(1)


class ConditionalDecoder(nn.Module):
    """U-Net velocity field ``v(x, t | mu, spk, cond)``."""

    def __init__(self, cfg: EstimatorConfig) -> None:
        super().__init__()
        chans = tuple(cfg.channels)
        t_dim = chans[0] * 4
        self.time_embeddings = SinusoidalTimeEmbedding(cfg.in_channels)
        self.time_mlp = TimestepMLP(cfg.in_channels, t_dim)

        def blocks(dim: int) -> nn.ModuleList:
            return nn.ModuleList(
                TransformerBlock(dim, cfg.num_heads, cfg.attention_head_dim) for _ in range(cfg.n_blocks)
            )

        self.down_blocks = nn.ModuleList()
        out_ch = cfg.in_channels
        for i, ch in enumerate(chans):
            in_ch, out_ch = out_ch, ch
            last = i == len(chans) - 1
            down = nn.Conv1d(out_ch, out_ch, 3, padding=1) if last else Downsample1D(out_ch)
            self.down_blocks.append(nn.ModuleList([ResnetBlock1D(in_ch, out_ch, t_dim), blocks(out_ch), down]))
        self.mid_blocks = nn.ModuleList(
            nn.ModuleList([ResnetBlock1D(chans[-1], chans[-1], t_dim), blocks(chans[-1])])
            for _ in range(cfg.num_mid_blocks)
        )
        up_chans = chans[::-1] + (chans[0],)
        self.up_blocks = nn.ModuleList()
        for i in range(len(up_chans) - 1):
            in_ch, out_ch = up_chans[i] * 2, up_chans[i + 1]
            last = i == len(up_chans) - 2
            up = nn.Conv1d(out_ch, out_ch, 3, padding=1) if last else Upsample1D(out_ch)
            self.up_blocks.append(nn.ModuleList([ResnetBlock1D(in_ch, out_ch, t_dim), blocks(out_ch), up]))
        self.final_block = Block1D(up_chans[-1], up_chans[-1])
        self.final_proj = nn.Conv1d(up_chans[-1], cfg.out_channels, 1)

    @staticmethod
    def _transformers(x: torch.Tensor, blocks: nn.ModuleList, mask: torch.Tensor) -> torch.Tensor:
        bias = _attn_bias(mask)
        h = x.transpose(1, 2)
        for block in blocks:
            h = block(h, bias)
        return h.transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        """x, mu, cond ``(B, 80, T)``; mask ``(B, 1, T)``; t ``(B,)``; spks ``(B, 80)`` -> ``(B, 80, T)``."""
        t_emb = self.time_mlp(self.time_embeddings(t).to(x.dtype))
        h = torch.cat([x, mu, spks.unsqueeze(-1).expand(-1, -1, x.size(-1)), cond], dim=1)
        skips, masks = [], [mask]
        for resnet, blocks, down in self.down_blocks:
            m = masks[-1]
            h = self._transformers(resnet(h, m, t_emb), blocks, m)
            skips.append(h)
            h = down(h * m)
            masks.append(m[:, :, ::2])
        masks = masks[:-1]
        m = masks[-1]
        for resnet, blocks in self.mid_blocks:
            h = self._transformers(resnet(h, m, t_emb), blocks, m)
        for resnet, blocks, up in self.up_blocks:
            m = masks.pop()
            skip = skips.pop()
            h = torch.cat([h[:, :, : skip.size(-1)], skip], dim=1)
            h = self._transformers(resnet(h, m, t_emb), blocks, m)
            h = up(h * m)
        h = self.final_block(h, m)
        return self.final_proj(h * m) * mask
