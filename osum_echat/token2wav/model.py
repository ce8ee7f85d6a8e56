"""``Token2Wav``: speech codes (25 Hz) -> 22.05 kHz waveform with a CosyVoice-300M-25Hz folder.

    t2w = Token2Wav.from_pretrained("CosyVoice-300M-25Hz", device="auto", dtype="fp32")
    wav, sr = t2w.synthesize(codes, voice="prompt.wav")
    for chunk in t2w.stream(code_iter, voice="prompt.wav"):
        ...

The flow runs under the device layer's autocast (fp32, bf16 or fp16); the HiFT vocoder always
runs in fp32 (its phase accumulation and iSTFT are precision-sensitive). All randomness (flow
noise, harmonic phases, excitation noise) comes from a CPU generator seeded per call, so the
same seed gives the same audio on every device.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from osum_echat.device import autocast, parse_dtype, resolve_device
from osum_echat.token2wav.config import Token2WavConfig, config_from_yaml
from osum_echat.token2wav.flow import FlowModel
from osum_echat.token2wav.frontend import PromptFrontend, Voice, VoiceLike
from osum_echat.token2wav.hift import HiFTGenerator
from osum_echat.token2wav.streaming import FlowStreamer, HiFTStreamer, NoiseTape, StreamConfig
from osum_echat.token2wav.weights import load_flow, load_hift

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("cosyvoice.yaml", "flow.pt", "hift.pt")


class Token2Wav:
    """Flow + HiFT + prompt frontend, on one device."""

    def __init__(
        self,
        cfg: Token2WavConfig,
        flow: FlowModel,
        hift: HiFTGenerator,
        frontend: PromptFrontend | None = None,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype = "fp32",
        seed: int = 0,
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(device)
        self.dtype = parse_dtype(dtype)
        self.flow = flow.to(self.device).eval()
        self.hift = hift.to(self.device).eval()
        self.frontend = frontend or PromptFrontend(cfg.mel, spk_dim=cfg.flow.spk_embed_dim)
        self.seed = seed

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @classmethod
    def from_config(cls, cfg: Token2WavConfig, **kwargs) -> "Token2Wav":
        """Random weights (tests, benchmarks)."""
        torch.manual_seed(kwargs.pop("init_seed", 0))
        return cls(cfg, FlowModel(cfg.flow), HiFTGenerator(cfg.hift), **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype = "fp32",
        cache_dir: str | Path | None = None,
        providers: Sequence[str] | None = None,
        seed: int = 0,
    ) -> "Token2Wav":
        """Load a CosyVoice-300M-25Hz folder (``cosyvoice.yaml``, ``flow.pt``, ``hift.pt``, and
        optionally ``campplus.onnx`` / ``speech_tokenizer_v1.onnx`` for prompt voices).
        ``llm.pt`` is never read. ``cache_dir`` keeps computed prompt voices on disk."""
        root = Path(model_dir)
        missing = [name for name in REQUIRED_FILES if not (root / name).exists()]
        if missing:
            raise FileNotFoundError(f"{root}: missing {', '.join(missing)} (expected a CosyVoice-300M-25Hz folder)")
        cfg = config_from_yaml(root / "cosyvoice.yaml")
        if cfg.flow.input_frame_rate != 25:
            logger.warning("%s: input_frame_rate is %d, not 25", root, cfg.flow.input_frame_rate)
        flow, hift = FlowModel(cfg.flow), HiFTGenerator(cfg.hift)
        load_flow(flow, root / "flow.pt")
        load_hift(hift, root / "hift.pt")
        frontend = PromptFrontend(
            cfg.mel,
            campplus=root / "campplus.onnx",
            tokenizer=root / "speech_tokenizer_v1.onnx",
            cache_dir=cache_dir,
            providers=providers,
            spk_dim=cfg.flow.spk_embed_dim,
        )
        logger.info("token2wav loaded from %s on %s (%s)", root, device, dtype)
        return cls(cfg, flow, hift, frontend, device=device, dtype=dtype, seed=seed)

    # ------------------------------------------------------------------ helpers

    def voice(self, voice: VoiceLike) -> Voice:
        """Resolve a wav path / ``Voice`` / None (no prompt) into a cached :class:`Voice`."""
        return self.frontend.voice(voice)

    def _check_codes(self, codes: Iterable[int] | np.ndarray | torch.Tensor) -> list[int]:
        if isinstance(codes, torch.Tensor):
            codes = codes.detach().cpu().reshape(-1).tolist()
        out = [int(c) for c in np.asarray(list(codes) if not isinstance(codes, np.ndarray) else codes).reshape(-1)]
        bad = [c for c in out if c < 0 or c >= self.cfg.flow.vocab_size]
        if bad:
            raise ValueError(f"{len(bad)} speech codes outside [0, {self.cfg.flow.vocab_size}): {bad[:5]}")
        return out

    def _generator(self, seed: int | None) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed if seed is None else seed)

    def _flow_fn(self, voice: Voice, tape: NoiseTape):
        """Bind prompt conditioning and the noise tape; returns ``run(tokens, first_frame, n_frames, pin)``."""
        dev = self.device
        p_tok = voice.tokens.view(1, -1).to(dev)
        p_mel = voice.mel.view(1, -1, self.cfg.mel.num_mels).to(dev)
        emb = voice.embedding.view(1, -1).float().to(dev)
        t1 = p_mel.size(1)

        def run(tokens: torch.Tensor, first: int, n_frames: int, pin_edges: bool) -> torch.Tensor:
            noise = torch.cat([tape.take(0, t1), tape.take(t1 + first, t1 + first + n_frames)], dim=-1).to(dev)
            with torch.inference_mode(), autocast(dev, self.dtype):
                mel = self.flow.inference(tokens.to(dev), p_tok, p_mel, emb, noise, n_frames, pin_edges)
            return mel.float()

        return run

    def _streamers(self, voice: VoiceLike, seed: int | None, scfg: StreamConfig) -> tuple[FlowStreamer, HiFTStreamer]:
        v = self.voice(voice)
        gen = self._generator(seed)
        tape = NoiseTape(self.cfg.flow.output_size, gen)
        tape.take(0, 0)
        hift = HiFTStreamer(self.hift, gen, scfg.hift_context_frames, scfg.hift_lookahead_frames)
        return FlowStreamer(self._flow_fn(v, tape), self.cfg.mel_frames, scfg), hift

    # ------------------------------------------------------------------ public API

    def synthesize(
        self, codes: Iterable[int] | np.ndarray | torch.Tensor, voice: VoiceLike = None, seed: int | None = None
    ) -> tuple[np.ndarray, int]:
        """All codes at once -> (waveform float32 ``(cfg.mel_frames(N) * 256,)``, 22050)."""
        toks = self._check_codes(codes)
        if not toks:
            return np.zeros(0, dtype=np.float32), self.sample_rate
        flow, hift = self._streamers(voice, seed, StreamConfig())
        flow.push(toks)
        mel = flow.step(final=True)
        wav = hift.push(mel, final=True)
        return wav.float().cpu().numpy().astype(np.float32), self.sample_rate

    def stream(
        self,
        code_iter: Iterable[int | Sequence[int]],
        voice: VoiceLike = None,
        seed: int | None = None,
        config: StreamConfig | None = None,
    ) -> Iterator[np.ndarray]:
        """Codes as they arrive (ints or lists of ints) -> float32 waveform chunks at 22.05 kHz.

        The concatenated chunks have the same length as :meth:`synthesize`'s output. When all
        codes fit the first chunk, the audio is identical to :meth:`synthesize` for the same seed.
        """
        scfg = config or StreamConfig()
        flow, hift = None, None
        for item in code_iter:
            codes = self._check_codes([item] if isinstance(item, (int, np.integer)) else item)
            if flow is None:
                flow, hift = self._streamers(voice, seed, scfg)
            flow.push(codes)
            while flow.ready():
                wav = hift.push(flow.step(final=False), final=False)
                if wav.numel():
                    yield wav.float().cpu().numpy().astype(np.float32)
        if flow is None:
            return
        wav = hift.push(flow.step(final=True), final=True)
        if wav.numel():
            yield wav.float().cpu().numpy().astype(np.float32)
