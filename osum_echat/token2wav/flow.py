"""CosyVoice v1 flow model (``MaskedDiffWithXvec``): speech codes -> 80-bin mel at 22.05 kHz.

codes ``(1, N)`` -> ``input_embedding`` -> Conformer ``encoder`` -> ``encoder_proj`` (80) ->
``length_regulator`` (linear interpolation to mel frames + 4 conv blocks) -> conditional flow
matching (Euler, cosine schedule, classifier-free guidance) with the U-Net
``decoder.estimator``. Parameter names match the released ``flow.pt``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from osum_echat.token2wav.config import FlowConfig, frames_for
from osum_echat.token2wav.encoder import ConformerEncoder, pad_mask
from osum_echat.token2wav.estimator import ConditionalDecoder

# The regulator pins the first and last EDGE_TOKENS codes to their nominal frame count when an
# utterance is long enough (> 2 * EDGE_TOKENS); the middle absorbs the rounding.
EDGE_TOKENS = 20


class InterpolateRegulator(nn.Module):
    """Length regulator: linear interpolation in time, then ``model`` = k x [Conv1d k3, GroupNorm(1),
    Mish] + Conv1d 1x1 (indices 0..3k in ``length_regulator.model``)."""

    def __init__(self, channels: int, sampling_ratios: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in sampling_ratios:
            layers += [nn.Conv1d(channels, channels, 3, 1, 1), nn.GroupNorm(1, channels), nn.Mish()]
        layers.append(nn.Conv1d(channels, channels, 1, 1))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def _interp(x: torch.Tensor, size: int) -> torch.Tensor:
        """x ``(B, T, C)`` -> ``(B, C, size)``."""
        if size <= 0:
            return x.new_zeros(x.size(0), x.size(2), 0)
        return F.interpolate(x.transpose(1, 2).contiguous(), size=size, mode="linear")

    def regulate(self, x2: torch.Tensor, mel_len2: int, token_rate: int, pin_edges: bool) -> torch.Tensor:
        """Generated-part interpolation ``(1, N, C) -> (1, C, mel_len2)``.

        With ``pin_edges`` and N > 40, the first/last 20 codes get ``frames_for(20)`` frames each
        (68 at 25 Hz), as the released model was run; streaming windows use plain interpolation.
        """
        edge = frames_for(EDGE_TOKENS, token_rate)
        if pin_edges and x2.size(1) > 2 * EDGE_TOKENS and mel_len2 > 2 * edge:
            head = self._interp(x2[:, :EDGE_TOKENS], edge)
            mid = self._interp(x2[:, EDGE_TOKENS:-EDGE_TOKENS], mel_len2 - 2 * edge)
            tail = self._interp(x2[:, -EDGE_TOKENS:], edge)
            return torch.cat([head, mid, tail], dim=2)
        return self._interp(x2, mel_len2)

    def inference(
        self, x1: torch.Tensor, x2: torch.Tensor, mel_len1: int, mel_len2: int, token_rate: int, pin_edges: bool = True
    ) -> torch.Tensor:
        """Prompt part x1 ``(1, N1, C)`` -> ``mel_len1`` frames, generated x2 ``(1, N2, C)`` ->
        ``mel_len2`` frames; returns ``(1, mel_len1 + mel_len2, C)``."""
        parts = []
        if x1.size(1) > 0 and mel_len1 > 0:
            parts.append(self._interp(x1, mel_len1))
        parts.append(self.regulate(x2, mel_len2, token_rate, pin_edges))
        return self.model(torch.cat(parts, dim=2)).transpose(1, 2).contiguous()


def time_span(n_timesteps: int, scheduler: str = "cosine", device: torch.device | None = None) -> torch.Tensor:
    """``n + 1`` flow times from 0 to 1; cosine warps ``s`` to ``1 - cos(pi/2 * s)``."""
    span = torch.linspace(0.0, 1.0, n_timesteps + 1, device=device)
    if scheduler == "cosine":
        span = 1.0 - torch.cos(span * 0.5 * math.pi)
    return span


class ConditionalCFM(nn.Module):
    """Fixed-step Euler ODE solver with classifier-free guidance around ``estimator``."""

    def __init__(self, cfg: FlowConfig) -> None:
        super().__init__()
        self.cfg_rate = cfg.inference_cfg_rate
        self.scheduler = cfg.t_scheduler
        self.estimator = ConditionalDecoder(cfg.estimator)

    def forward(
        self,
        z: torch.Tensor,
        mu: torch.Tensor,
        mask: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
        n_timesteps: int,
    ) -> torch.Tensor:
        """z (initial noise), mu, cond ``(1, 80, T)``; mask ``(1, 1, T)``; spks ``(1, 80)`` -> x1 ``(1, 80, T)``.

        Each step evaluates a batch of two, row 0 conditional and row 1 with mu/spks/cond zeroed,
        and moves along ``(1 + w) v_cond - w v_uncond`` (``w = inference_cfg_rate``).
        """
        span = time_span(n_timesteps, self.scheduler, z.device)
        x = z
        w = self.cfg_rate
        mu_in = torch.cat([mu, torch.zeros_like(mu)])
        spk_in = torch.cat([spks, torch.zeros_like(spks)])
        cond_in = torch.cat([cond, torch.zeros_like(cond)])
        mask_in = torch.cat([mask, mask])
        for step in range(1, len(span)):
            t, dt = span[step - 1], span[step] - span[step - 1]
            if w > 0:
                v = self.estimator(torch.cat([x, x]), mask_in, mu_in, t.expand(2).to(x.dtype), spk_in, cond_in)
                v_cond, v_unc = v[:1], v[1:]
                v = (1.0 + w) * v_cond - w * v_unc
            else:
                v = self.estimator(x, mask, mu, t.expand(1).to(x.dtype), spks, cond)
            x = x + dt.to(x.dtype) * v
        return x.float()


class FlowModel(nn.Module):
    """``MaskedDiffWithXvec`` inference: codes + prompt -> mel of the generated part."""

    def __init__(self, cfg: FlowConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_embedding = nn.Embedding(cfg.vocab_size, cfg.input_size)
        self.spk_embed_affine_layer = nn.Linear(cfg.spk_embed_dim, cfg.output_size)
        self.encoder = ConformerEncoder(cfg.encoder)
        self.encoder_proj = nn.Linear(cfg.encoder.output_size, cfg.output_size)
        self.length_regulator = InterpolateRegulator(cfg.regulator_channels, cfg.sampling_ratios)
        self.decoder = ConditionalCFM(cfg)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens ``(1, N)`` int -> ``(1, N, 80)`` projected encoder states."""
        lens = torch.tensor([tokens.size(1)], device=tokens.device)
        mask = pad_mask(lens, tokens.size(1)).unsqueeze(-1)
        emb = self.input_embedding(tokens.clamp(min=0)) * mask
        h, _ = self.encoder(emb, lens)
        return self.encoder_proj(h)

    @torch.inference_mode()
    def inference(
        self,
        tokens: torch.Tensor,
        prompt_tokens: torch.Tensor,
        prompt_feat: torch.Tensor,
        embedding: torch.Tensor,
        noise: torch.Tensor,
        mel_len2: int,
        pin_edges: bool = True,
        n_timesteps: int | None = None,
    ) -> torch.Tensor:
        """Generate mel for ``tokens``.

        Args:
            tokens: ``(1, N2)`` generated codes.
            prompt_tokens: ``(1, N1)`` prompt codes (N1 may be 0).
            prompt_feat: ``(1, T1, 80)`` prompt mel (T1 may be 0).
            embedding: ``(1, spk_embed_dim)`` speaker x-vector (zeros for no speaker).
            noise: ``(1, 80, >= T1 + mel_len2)`` initial noise; the first ``T1 + mel_len2`` frames are used.
            mel_len2: frames to generate for ``tokens``.
        Returns:
            ``(1, 80, mel_len2)`` float32 mel (natural-log magnitude).
        """
        emb = self.spk_embed_affine_layer(F.normalize(embedding, dim=1))
        n1 = prompt_tokens.size(1)
        h = self.encode(torch.cat([prompt_tokens, tokens], dim=1))
        mel_len1 = prompt_feat.size(1)
        h = self.length_regulator.inference(
            h[:, :n1], h[:, n1:], mel_len1, mel_len2, self.cfg.input_frame_rate, pin_edges
        )
        total = mel_len1 + mel_len2
        cond = torch.zeros(1, total, self.cfg.output_size, device=h.device, dtype=h.dtype)
        cond[:, :mel_len1] = prompt_feat.to(h.dtype)
        mask = torch.ones(1, 1, total, device=h.device, dtype=h.dtype)
        z = noise[:, :, :total].to(device=h.device, dtype=h.dtype)
        if z.size(2) < total:
            raise ValueError(f"noise has {z.size(2)} frames, {total} needed")
        steps = self.cfg.n_timesteps if n_timesteps is None else n_timesteps
        feat = self.decoder(z, h.transpose(1, 2).contiguous(), mask, emb, cond.transpose(1, 2).contiguous(), steps)
        return feat[:, :, mel_len1:]
