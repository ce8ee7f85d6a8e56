"""Per-sample pipeline stages: small generators ``stage(samples, ctx) -> samples``.

Order (cheap metadata work first, audio decoded only for samples that survive it):

    tokenize -> decode -> resample -> speed_perturb -> filter_audio -> features -> augment

Every random decision is a pure function of (seed, epoch, sample uid, purpose), so a stream
can be re-run exactly. In ``light`` mode (fast-forward on resume) audio is never decoded:
lengths come from the audio header and features are zero-stride placeholders of the right
shape, which is all the batcher needs to reproduce batch boundaries.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from osum_echat.audio.augment import apply_plan, spec_aug_plan, spec_sub_plan
from osum_echat.audio.features import HOP_LENGTH, N_FFT, log_mel_spectrogram
from osum_echat.audio.io import AudioError, load_audio
from osum_echat.audio.io import resample as resample_wav
from osum_echat.data.config import DataConfig
from osum_echat.data.drops import DropCounter
from osum_echat.data.render import DropSample, Renderer
from osum_echat.data.sample import AudioRef, Sample
from osum_echat.data.sources import audio_info
from osum_echat.data.tasks import frame_codes, get_spec, rewrite_task
from osum_echat.model.batch import (
    SpeechInSegment,
    SpeechOutSegment,
    TextSegment,
    example_length,
)

logger = logging.getLogger(__name__)
Samples = Iterator[Sample]


@dataclass
class StageContext:
    """What the stages share: config, renderer, drop counter and the seeding coordinates."""

    cfg: DataConfig
    renderer: Renderer
    drops: DropCounter = field(default_factory=DropCounter)
    family: str | None = None  # keep only this family (None = all)
    train: bool = True  # task rewrites + augmentation
    light: bool = False  # fast-forward mode: no decoding, no features
    epoch: int = 0

    def rng(self, sample: Sample, purpose: str) -> random.Random:
        return random.Random(f"{self.cfg.seed}|{purpose}|{self.epoch}|{sample.uid}")


def _history(sample: Sample, boundary: int) -> None:
    """Check past turns are numbered 1..N with audio + text; attach their reply codes."""
    for n, item in enumerate(sample.history, start=1):
        if item.index != n or item.audio is None or item.text is None:
            raise DropSample("history_gap", f"turn {item.index}")
        raw = sample.extra.get(f"speech_token_{n}")
        item.codes = frame_codes(raw, boundary)[1:-1] if raw else None


def tokenize(samples: Samples, ctx: StageContext) -> Samples:
    """Task -> TaskSpec -> segments (speech features still placeholders) + cheap filters.

    Reads: task, txt, extra, audio, history. Writes: spec, segments, label_len, codes_len
    (and length for text-only examples)."""
    cfg, r, f = ctx.cfg, ctx.renderer, ctx.cfg.filter
    for s in samples:
        try:
            rng = ctx.rng(s, "tok")
            if not s.task and not cfg.default_task:
                raise DropSample("missing_field", "task")
            s.task = s.task or cfg.default_task
            rates = (cfg.only_x_rate, cfg.streaming_tts_rate) if ctx.train else (0.0, 0.0)
            s.task = rewrite_task(s, rng, *rates)  # random rewrites in training only
            spec = get_spec(s.task, cfg.unknown_task)
            if ctx.family and spec.family != ctx.family:
                raise DropSample("wrong_family", f"{spec.name} is {spec.family}")
            if spec.speech_in and s.audio is None:
                raise DropSample("missing_field", "audio")
            if spec.history and s.history:
                _history(s, r.speech_boundary)
            else:
                s.history = []
            if f.banned_substrings and any(b in s.txt for b in f.banned_substrings):
                raise DropSample("banned_text")
            s.spec = spec
            s.segments = spec.build(s, r, rng, with_target=True)
            _measure_targets(s)
            _check_target_lengths(s, cfg)
            if not spec.speech_in:
                s.length = example_length_of(s)
                if f.max_seq_len and s.length > f.max_seq_len:
                    raise DropSample("seq_too_long", str(s.length))
        except DropSample as d:
            ctx.drops.add(d.reason, s.key, d.detail, origin=s.origin)
            continue
        yield s


def _measure_targets(s: Sample) -> None:
    s.label_len = sum(len(g.ids) for g in s.segments if isinstance(g, TextSegment) and g.supervised)
    s.codes_len = sum(len(g.ids) for g in s.segments if isinstance(g, SpeechOutSegment) and g.supervised)


def _check_target_lengths(s: Sample, cfg: DataConfig) -> None:
    f = cfg.filter
    spec = s.spec
    # text ids incl. eos; TTS (non-streaming): the input text X (+1 for the eos it lacks)
    n_text = len(s.segments[1].ids) + 1 if spec.text_input and not spec.streaming else s.label_len
    if n_text - 1 < f.min_label_tokens:
        raise DropSample("label_too_short", str(s.label_len))
    if n_text - 1 > f.max_label_tokens:
        raise DropSample("label_too_long", str(n_text))
    if spec.speech_out:
        if s.codes_len - 2 > f.max_speech_codes:
            raise DropSample("too_many_codes", str(s.codes_len))
        if not spec.streaming and f.min_speech_text_ratio * n_text >= s.codes_len:
            raise DropSample("speech_text_ratio", f"{n_text} text ids, {s.codes_len} speech ids")


def example_length_of(s: Sample) -> int:
    from osum_echat.model.batch import Example

    return example_length(Example(s.segments))


def _audio_refs(s: Sample) -> list[AudioRef]:
    return [h.audio for h in s.history] + ([s.audio] if s.spec.speech_in else [])


def decode(samples: Samples, ctx: StageContext) -> Samples:
    """Decode the current and history audio (mono float32); light mode reads headers only.

    Reads: audio, history[].audio. Writes: wav / history feats source, sample_rate,
    num_samples (at the source rate until resample)."""
    for s in samples:
        if not s.spec.speech_in and not s.history:
            yield s
            continue
        try:
            decoded = []
            for ref in _audio_refs(s):
                if ctx.light:
                    n, sr = audio_info(ref)
                    decoded.append((None, n, sr))
                else:
                    wav, sr = load_audio(ref.source(), ref.start, ref.end, name=ref.label())
                    decoded.append((wav, int(wav.numel()), sr))
        except (AudioError, RuntimeError, OSError, ValueError) as err:
            missing = ref.path if ref.data is None and ref.path and not os.path.isfile(ref.path) else None
            detail = str(err) if isinstance(err, AudioError) else f"{ref.label()}: {err}"
            ctx.drops.add("unreadable_audio", s.key, detail[:300], origin=s.origin, path=missing)
            continue
        for item, (wav, n, sr) in zip(s.history, decoded):
            item.feats, item.num_samples, item.sample_rate = wav, n, sr  # waveform until `features`
        if s.spec.speech_in:
            s.wav, s.num_samples, s.sample_rate = decoded[-1]
        s.light = ctx.light
        if not ctx.light:  # light samples keep their bytes: they may be materialised later
            s.audio = None
            for item in s.history:
                item.audio = None
        yield s


def _resampled_len(n: int, orig: int, new: int) -> int:
    """Output length of torchaudio's sinc resampling: ceil(n * new / orig)."""
    return n if orig == new else -(-n * new // orig)


def resample(samples: Samples, ctx: StageContext) -> Samples:
    """Everything to ``cfg.sample_rate`` (16 kHz). Reads/writes wav, num_samples, sample_rate."""
    target = ctx.cfg.sample_rate
    for s in samples:
        for item in s.history:
            if item.sample_rate != target:
                item.num_samples = _resampled_len(item.num_samples, item.sample_rate, target)
                if item.feats is not None:
                    item.feats = resample_wav(item.feats, item.sample_rate, target)
                item.sample_rate = target
        if s.spec.speech_in and s.sample_rate != target:
            s.num_samples = _resampled_len(s.num_samples, s.sample_rate, target)
            if s.wav is not None:
                s.wav = resample_wav(s.wav, s.sample_rate, target)
            s.sample_rate = target
        yield s


def speed_perturb(samples: Samples, ctx: StageContext) -> Samples:
    """Random speed change (tempo + pitch) of the current turn; off by default."""
    a, sr = ctx.cfg.augment, ctx.cfg.sample_rate
    for s in samples:
        if a.speed_perturb and ctx.train and s.spec.speech_in:
            speed = ctx.rng(s, "speed").choice(a.speeds)
            if speed != 1.0:
                fake_sr = round(sr * speed)
                s.num_samples = _resampled_len(s.num_samples, fake_sr, sr)
                if s.wav is not None:
                    s.wav = resample_wav(s.wav, fake_sr, sr)
        yield s


def filter_audio(samples: Samples, ctx: StageContext) -> Samples:
    """Frame limits of the current turn; every speech input needs one STFT window (400
    samples) so that the encoder/adapter produce at least one frame."""
    f = ctx.cfg.filter
    for s in samples:
        if s.spec.speech_in or s.history:
            lens = [h.num_samples for h in s.history] + ([s.num_samples] if s.spec.speech_in else [])
            if min(lens) < N_FFT:
                ctx.drops.add("too_short_for_encoder", s.key, f"{min(lens)} samples", origin=s.origin)
                continue
        if s.spec.speech_in:
            frames = s.num_samples // HOP_LENGTH
            if frames < f.min_frames:
                ctx.drops.add("too_short", s.key, f"{frames} frames", origin=s.origin)
                continue
            if frames > f.max_frames:
                ctx.drops.add("too_long", s.key, f"{frames} frames", origin=s.origin)
                continue
        yield s


def _compact_pcm(wav: torch.Tensor) -> torch.Tensor:
    """The waveform as int16 PCM when that is exact (16-bit audio, not resampled: x * 32768 is
    an integer in range), else as is: half the bytes in the shuffle buffer, through the worker
    pipe and to the device; ``Batch.featurize`` divides by 32768 again (exact in float32)."""
    q = wav * 32768.0
    if bool(((q == q.round()) & (q >= -32768) & (q <= 32767)).all()):
        return q.to(torch.int16)
    return wav


def features(samples: Samples, ctx: StageContext) -> Samples:
    """Whisper log-mel (T, 80) of every speech input, put into the SpeechIn segments in layout
    order (history turns, then the current turn); exact LLM length and the seq filter.
    With ``data.features_on_device`` the segments keep the waveform and a stand-in of the
    features' shape instead (the model computes them: ``Batch.featurize``).
    Reads: wav, history[].feats (waveforms). Writes: feats, segments, length; frees wav."""
    nb, f = ctx.cfg.num_mel_bins, ctx.cfg.filter
    on_device = ctx.cfg.features_on_device and not ctx.light
    for s in samples:
        if s.spec.speech_in or s.history:
            feats, wavs = [], []
            for wav, n in [(h.feats, h.num_samples) for h in s.history] + (
                    [(s.wav, s.num_samples)] if s.spec.speech_in else []):
                if wav is None or on_device:  # light mode / features on the device: right shape
                    feats.append(torch.zeros(1, nb).expand(n // HOP_LENGTH, nb))
                else:
                    feats.append(log_mel_spectrogram(wav, nb))
                wavs.append(_compact_pcm(wav) if on_device and wav is not None else None)
            slots = [i for i, g in enumerate(s.segments) if isinstance(g, SpeechInSegment)]
            for i, fe, wav in zip(slots, feats, wavs):
                s.segments[i] = SpeechInSegment(fe, wav=wav)
            for h, fe in zip(s.history, feats):
                h.feats = fe
            if s.spec.speech_in:
                s.feats = feats[-1]
            s.wav = None
            s.length = example_length_of(s)
            if f.max_seq_len and s.length > f.max_seq_len:
                ctx.drops.add("seq_too_long", s.key, str(s.length), origin=s.origin)
                continue
        yield s


def augment(samples: Samples, ctx: StageContext) -> Samples:
    """SpecAugment + SpecSub on the current turn's features (train only, not in light mode)."""
    a = ctx.cfg.augment
    for s in samples:
        if ctx.train and not ctx.light and s.feats is not None and (a.spec_aug or a.spec_sub):
            rng = ctx.rng(s, "aug")
            t_len, f_len = s.feats.shape
            plan = []  # the random draws (same order as before: masks, then substitutions)
            if a.spec_aug:
                plan.append(("aug", spec_aug_plan(t_len, f_len, rng, a.num_t_mask, a.num_f_mask, a.max_t, a.max_f)))
            if a.spec_sub:
                plan.append(("sub", spec_sub_plan(t_len, rng, a.max_t_sub, a.num_t_sub)))
            idx = max(i for i, g in enumerate(s.segments) if isinstance(g, SpeechInSegment))
            seg = s.segments[idx]
            if seg.wav is not None:  # features on the device: the model applies the plan
                s.segments[idx] = SpeechInSegment(seg.feats, wav=seg.wav, augment=tuple(plan))
            else:
                s.feats = apply_plan(s.feats, tuple(plan))
                s.segments[idx] = SpeechInSegment(s.feats)
        yield s


def sample_stages(samples: Samples, ctx: StageContext) -> Samples:
    """The per-sample chain, in order."""
    for stage in (tokenize, decode, resample, speed_perturb, filter_audio, features, augment):
        samples = stage(samples, ctx)
    return samples


def materialize(s: Sample, ctx: StageContext) -> Sample | None:
    """Decode + features (+ augmentation) of a sample that went through light mode, giving
    exactly what the full pipeline would have produced. None (counted) if it now fails."""
    if not getattr(s, "light", False):
        return s
    full = StageContext(cfg=ctx.cfg, renderer=ctx.renderer, drops=ctx.drops, family=ctx.family,
                        train=ctx.train, light=False, epoch=ctx.epoch)
    out = [s]
    for stage in (decode, resample, speed_perturb, features, augment):
        out = stage(iter(out), full)
    got = list(out)
    return got[0] if got else None
