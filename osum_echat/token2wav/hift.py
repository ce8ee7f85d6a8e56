"""HiFT vocoder (neural source filter + iSTFTNet), CosyVoice v1 layout: mel -> 22.05 kHz waveform.

mel ``(B, 80, T)`` -> F0 per frame (``f0_predictor``) -> harmonic source at the sample rate
(``m_source``) -> filter network: ``conv_pre`` -> [LeakyReLU, ``ups[i]`` (ConvTranspose),
+ ``source_resblocks[i](source_downs[i](STFT(source)))``, mean of ``resblocks``] ->
``conv_post`` -> log-magnitude / phase -> iSTFT (n_fft 16, hop 4). 256 samples per frame.

Randomness (initial harmonic phases, additive noise) is passed in, so that full and
streaming synthesis draw the same numbers; the harmonic phase can be carried across calls.
Parameter names match ``hift.pt`` (with its ``generator.`` prefix stripped); weight norm uses
``torch.nn.utils.parametrizations`` whose load hook also accepts old ``weight_g/weight_v`` keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from osum_echat.token2wav.config import HiFTConfig


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class Snake(nn.Module):
    """``x + sin(alpha x)^2 / alpha`` with a per-channel ``alpha`` (linear scale)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.view(1, -1, 1)
        return x + torch.sin(x * alpha).pow(2) / (alpha + 1e-9)


class ResBlock(nn.Module):
    """Dilated residual block with Snake activations (``convs1/2``, ``activations1/2``)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, 1, padding=_padding(kernel))) for _ in dilations
        )
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations1, self.activations2):
            x = x + c2(a2(c1(a1(x))))
        return x


class F0Predictor(nn.Module):
    """``condnet`` = 5 x [weight-normed Conv1d k3, ELU] (indices 0, 2, 4, 6, 8), ``classifier`` -> |F0|."""

    def __init__(self, in_channels: int, cond_channels: int, num_class: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(5):
            layers += [weight_norm(nn.Conv1d(in_channels if i == 0 else cond_channels, cond_channels, 3, padding=1)), nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(cond_channels, num_class)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel ``(B, 80, T)`` -> F0 in Hz ``(B, T)``."""
        h = self.condnet(mel).transpose(1, 2)
        return torch.abs(self.classifier(h).squeeze(-1))


class SourceModule(nn.Module):
    """Harmonic-plus-noise excitation: sines at ``k * F0`` (k = 1..H+1) merged by ``l_linear`` + tanh."""

    def __init__(self, cfg: HiFTConfig) -> None:
        super().__init__()
        self.sampling_rate = cfg.sampling_rate
        self.n_sines = cfg.nb_harmonics + 1
        self.amp = cfg.nsf_alpha
        self.noise_std = cfg.nsf_sigma
        self.threshold = cfg.nsf_voiced_threshold
        self.l_linear = nn.Linear(self.n_sines, 1)

    def forward(
        self, f0: torch.Tensor, init_phase: torch.Tensor, noise: torch.Tensor, phase0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Build the excitation.

        Args:
            f0: ``(B, L)`` F0 in Hz at the sample rate.
            init_phase: ``(B, H+1)`` random start phases in radians (0 for the fundamental).
            noise: ``(B, H+1, L)`` standard normal noise.
            phase0: ``(B, H+1)`` phase (in cycles) carried from the previous call, or None.
        Returns:
            source ``(B, 1, L)`` and the end phase ``(B, H+1)`` in cycles (to carry on).
        """
        harmonics = torch.arange(1, self.n_sines + 1, device=f0.device, dtype=f0.dtype)
        cycles = torch.cumsum(f0.unsqueeze(1) * harmonics.view(1, -1, 1) / self.sampling_rate, dim=-1)
        if phase0 is not None:
            cycles = cycles + phase0.unsqueeze(-1)
        cycles = cycles % 1.0
        sines = self.amp * torch.sin(2 * math.pi * cycles + init_phase.unsqueeze(-1))
        uv = (f0 > self.threshold).to(f0.dtype).unsqueeze(1)
        noise_amp = uv * self.noise_std + (1 - uv) * self.amp / 3
        sines = sines * uv + noise_amp * noise
        source = torch.tanh(self.l_linear(sines.transpose(1, 2))).transpose(1, 2)
        end = cycles[:, :, -1] if cycles.size(-1) else (phase0 if phase0 is not None else cycles.new_zeros(cycles.shape[:2]))
        return source, end


class HiFTGenerator(nn.Module):
    """The vocoder; see the module docstring."""

    def __init__(self, cfg: HiFTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        base = cfg.base_channels
        n_fft = cfg.istft_n_fft
        self.upsample = cfg.samples_per_frame
        self.m_source = SourceModule(cfg)
        self.conv_pre = weight_norm(nn.Conv1d(cfg.in_channels, base, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(base // 2**i, base // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        down_rates = [1] + list(cfg.upsample_rates[::-1][:-1])
        cum = [math.prod(down_rates[: i + 1]) for i in range(len(down_rates))][::-1]
        for i, (u, k, d) in enumerate(zip(cum, cfg.source_resblock_kernel_sizes, cfg.source_resblock_dilation_sizes)):
            ch = base // 2 ** (i + 1)
            conv = nn.Conv1d(n_fft + 2, ch, 1, 1) if u == 1 else nn.Conv1d(n_fft + 2, ch, u * 2, u, padding=u // 2)
            self.source_downs.append(conv)
            self.source_resblocks.append(ResBlock(ch, k, d))
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = base // 2 ** (i + 1)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(ResBlock(ch, k, d))
        self.conv_post = weight_norm(nn.Conv1d(ch, n_fft + 2, 7, 1, padding=3))
        self.f0_predictor = F0Predictor(cfg.in_channels, cfg.f0_cond_channels, cfg.f0_num_class)
        self.register_buffer("stft_window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` -> ``(B, n_fft + 2, L / hop + 1)`` real ⊕ imag."""
        n_fft, hop = self.cfg.istft_n_fft, self.cfg.istft_hop
        spec = torch.stft(x, n_fft, hop, n_fft, window=self.stft_window, return_complex=True)
        return torch.cat([spec.real, spec.imag], dim=1)

    def _istft(self, log_mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        n_fft, hop = self.cfg.istft_n_fft, self.cfg.istft_hop
        mag = torch.clamp(torch.exp(log_mag), max=1e2)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        return torch.istft(spec, n_fft, hop, n_fft, window=self.stft_window)

    def decode(self, mel: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """mel ``(B, 80, T)``, source ``(B, 1, 256 T)`` -> waveform ``(B, 256 T)`` clamped to the audio limit."""
        cfg = self.cfg
        s_stft = self._stft(source.squeeze(1))
        x = self.conv_pre(mel)
        n_kernels = len(cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, cfg.lrelu_slope))
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            x = sum(self.resblocks[i * n_kernels + j](x) for j in range(n_kernels)) / n_kernels
        x = self.conv_post(F.leaky_relu(x))
        half = cfg.istft_n_fft // 2 + 1
        wav = self._istft(x[:, :half], torch.sin(x[:, half:]))
        return torch.clamp(wav, -cfg.audio_limit, cfg.audio_limit)

    def random_state(self, batch: int, n_samples: int, generator: torch.Generator | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial phases ``(B, H+1)`` (fundamental at 0) and noise ``(B, H+1, n_samples)``."""
        h = self.m_source.n_sines
        phase = (torch.rand(batch, h, generator=generator, device=device) * 2 - 1) * math.pi
        phase[:, 0] = 0
        noise = torch.randn(batch, h, n_samples, generator=generator, device=device)
        return phase, noise

    @torch.inference_mode()
    def inference(
        self,
        mel: torch.Tensor,
        init_phase: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """mel ``(B, 80, T)`` float32 -> waveform ``(B, 256 T)``; randomness drawn from ``generator``
        unless ``init_phase``/``noise`` are given."""
        n = mel.size(-1) * self.upsample
        if init_phase is None or noise is None:
            init_phase, noise = self.random_state(mel.size(0), n, generator, mel.device)
        f0 = self.f0_predictor(mel).repeat_interleave(self.upsample, dim=-1)
        source, _ = self.m_source(f0, init_phase, noise[:, :, :n])
        return self.decode(mel, source)
