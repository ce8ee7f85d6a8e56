"""The contract between data and model: conversation segments in, a packed batch out.

The data side decides *what* a conversation is (an :class:`Example` = ordered segments); this
module lays examples out on rows (right padding, or several examples packed per row) and
computes next-token targets in the joint label space; the model decides *how* each position
is embedded (``OsumEChat.forward``).

Position kinds:

========  =============================================  ==========================
kind      what sits there                               embedded with
========  =============================================  ==========================
PAD       padding                                       zeros
TEXT      a text token id                               LLM ``embed_tokens``
SPEECH    a speech id (codes 0..4095, 4096 boundary,     ``speech_token_emded``
          markers 4097/4098 around input speech)
AUDIO     one frame of the adapter output                encoder + adapter
========  =============================================  ==========================

Targets are *next-token aligned*: ``labels[b, t]`` is the class that position ``t`` must
predict (the token at ``t + 1`` when that token is supervised, else -100). Text classes are
text ids; speech classes are ``text_vocab_size + speech id``. Packed examples never predict
across their boundary, and their position ids restart at 0, which is what the LLM uses to
confine attention to each example (block-diagonal causal attention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

import numpy as np
import torch

IGNORE_ID = -100
PAD, TEXT, SPEECH, AUDIO = 0, 1, 2, 3


@dataclass
class TextSegment:
    """Text token ids. ``supervised`` marks them as targets; ``no_loss`` lists positions inside
    the segment that are never targets (e.g. the "don't care" middle of an unknown tag)."""

    ids: list[int]
    supervised: bool = False
    no_loss: tuple[int, ...] = ()


@dataclass
class SpeechInSegment:
    """User speech as log-mel features (T, 80); becomes [4097] adapter frames [4098].

    With features computed on the device (``data.features_on_device``) ``feats`` is a
    zero-stride stand-in of the right shape, ``wav`` the 16 kHz waveform (T * 160 + r samples;
    float32, or int16 PCM to be divided by 32768)
    and ``augment`` the SpecAugment/SpecSub plan to apply to its features (``audio/augment.py``).
    """

    feats: torch.Tensor
    wav: torch.Tensor | None = None
    augment: tuple | None = None


@dataclass
class SpeechOutSegment:
    """Speech ids (CosyVoice codes with both 4096 boundaries), embedded with the speech table."""

    ids: list[int]
    supervised: bool = False


Segment = Union[TextSegment, SpeechInSegment, SpeechOutSegment]


@dataclass
class Example:
    """One training/decoding conversation, plus bookkeeping for logs and metrics."""

    segments: list[Segment]
    key: str = ""
    task: str = ""
    family: str = ""

    @property
    def speech_in(self) -> list[SpeechInSegment]:
        return [s for s in self.segments if isinstance(s, SpeechInSegment)]


@dataclass
class Batch:
    """A model-ready batch. Shapes: B rows, L positions, N speech inputs, T feature frames.

    input_ids     (B, L) long   text id / speech id per position (0 at PAD and AUDIO)
    kinds         (B, L) uint8  PAD / TEXT / SPEECH / AUDIO
    labels        (B, L) long   next-token target in the joint space, -100 = none
    position_ids  (B, L) long   restart at 0 for every example (and for the padding tail)
    feats         (N, T, F)     zero-padded log-mel of every speech input, in layout order
    feats_lengths (N,)          valid frames
    audio_slots   (N, 3) long   (row, start, length) of each speech input's adapter frames
    wavs          (N, S)        only with features computed on the device: zero-padded 16 kHz
                                waveforms, float32 in [-1, 1] or int16 PCM (x 1/32768)
                                (``feats`` is then (N, 0, F)); see :meth:`featurize`
    wav_lengths   (N,) long     valid samples of ``wavs``
    augment       N plans       SpecAugment/SpecSub plan per speech input (None: none)
    """

    input_ids: torch.Tensor
    kinds: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    feats: torch.Tensor
    feats_lengths: torch.Tensor
    audio_slots: torch.Tensor
    keys: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    # row and [start, end) of every example (for packing stats and per-example metrics)
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    wavs: torch.Tensor | None = None
    wav_lengths: torch.Tensor | None = None
    augment: list = field(default_factory=list)

    def featurize(self) -> "Batch":
        """The batch with ``feats`` computed from ``wavs`` on their device in one batched
        log-mel call (``audio/features.py: log_mel_batch``; equal to the loader's features
        within 1e-4), each speech input's augmentation plan applied; a batch that already has
        features is returned as is."""
        if self.wavs is None:
            return self
        from osum_echat.audio.augment import apply_plan
        from osum_echat.audio.features import log_mel_batch

        if self.wavs.shape[0] == 0:
            feats = self.feats
        else:
            # float32 as in the loader, also inside a bf16/fp16 autocast region
            with torch.no_grad(), torch.autocast(self.wavs.device.type, enabled=False):
                wavs = self.wavs.float() / 32768.0 if self.wavs.dtype == torch.int16 else self.wavs
                feats, frames = log_mel_batch(wavs, self.wav_lengths, n_mels=int(self.feats.shape[-1]))
            if not torch.equal(frames.cpu(), self.feats_lengths.cpu()):
                raise ValueError(f"waveforms give {frames.tolist()} frames, the batch has "
                                 f"{self.feats_lengths.tolist()} (keys {self.keys})")
            for j, plan in enumerate(self.augment):
                if plan is not None:
                    n = int(self.feats_lengths[j])
                    feats[j, :n] = apply_plan(feats[j, :n], plan)
        out = dict(self.__dict__)
        out.update(feats=feats, wavs=None, wav_lengths=None, augment=[])
        return Batch(**out)

    @property
    def num_examples(self) -> int:
        return len(self.spans)

    @property
    def num_targets(self) -> int:
        return int((self.labels != IGNORE_ID).sum())

    def padding_ratio(self) -> float:
        return float((self.kinds == PAD).float().mean()) if self.kinds.numel() else 0.0

    def to(self, device: torch.device) -> "Batch":
        """A copy with tensors on ``device`` (the original is not modified)."""
        moved = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                 for k, v in self.__dict__.items()}
        return Batch(**moved)


def speech_embed_length(num_frames: int) -> int:
    """Adapter frames for ``num_frames`` log-mel frames: encoder /2, then the adapter /2 /2.

    The LLM sees this many speech embeddings plus the two markers.
    """
    t = (num_frames + 1) // 2  # encoder conv front-end, stride 2
    t = (t + 1) // 2  # adapter, stride 2
    return (t + 1) // 2  # adapter, stride 2


@dataclass
class _Flat:
    ids: list[int]
    kinds: list[int]
    targets: list[int]  # class of the token *at* this position if supervised, else -100
    audio: list[tuple[int, int, SpeechInSegment]]  # (offset, length, segment)


def flatten_example(
    ex: Example, text_vocab_size: int, speech_bos: int, speech_eos: int,
    embed_length: Callable[[int], int] = speech_embed_length,
) -> _Flat:
    """Lay one example out as flat per-position lists (targets not yet shifted)."""
    ids: list[int] = []
    kinds: list[int] = []
    targets: list[int] = []
    audio: list[tuple[int, int, SpeechInSegment]] = []
    for seg in ex.segments:
        if isinstance(seg, TextSegment):
            skip = set(seg.no_loss)
            ids.extend(seg.ids)
            kinds.extend([TEXT] * len(seg.ids))
            targets.extend(i if seg.supervised and j not in skip else IGNORE_ID
                           for j, i in enumerate(seg.ids))
        elif isinstance(seg, SpeechOutSegment):
            ids.extend(seg.ids)
            kinds.extend([SPEECH] * len(seg.ids))
            targets.extend((text_vocab_size + i) if seg.supervised else IGNORE_ID for i in seg.ids)
        elif isinstance(seg, SpeechInSegment):
            n = embed_length(int(seg.feats.shape[0]))
            if n <= 0:
                raise ValueError(f"{ex.key}: speech input of {seg.feats.shape[0]} frames is too short")
            ids.append(speech_bos)
            kinds.append(SPEECH)
            targets.append(IGNORE_ID)
            audio.append((len(ids), n, seg))
            ids.extend([0] * n)
            kinds.extend([AUDIO] * n)
            targets.extend([IGNORE_ID] * n)
            ids.append(speech_eos)
            kinds.append(SPEECH)
            targets.append(IGNORE_ID)
        else:
            raise TypeError(f"{ex.key}: unknown segment type {type(seg).__name__}")
    return _Flat(ids, kinds, targets, audio)


def example_length(ex: Example, embed_length: Callable[[int], int] = speech_embed_length) -> int:
    """Number of LLM positions the example occupies (what packing budgets count)."""
    n = 0
    for seg in ex.segments:
        if isinstance(seg, SpeechInSegment):
            n += embed_length(int(seg.feats.shape[0])) + 2
        else:
            n += len(seg.ids)
    return n


def pack_rows(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """First-fit-decreasing assignment of examples to rows of at most ``max_tokens`` positions.

    An example longer than ``max_tokens`` gets a row of its own (the data filter is the place
    to drop over-long examples). Returns example indices per row, each row in input order.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_tokens - lengths[i])
    return [sorted(r) for r in rows]


def collate(
    examples: Sequence[Example], text_vocab_size: int, speech_token_num: int = 4097,
    pack_max_tokens: int | None = None, pad_to_multiple: int = 1,
    embed_length: Callable[[int], int] = speech_embed_length,
) -> Batch:
    """Examples -> :class:`Batch`.

    Without ``pack_max_tokens`` every example gets its own right-padded row. With it, examples
    are packed several per row (first-fit decreasing) up to that many positions.
    ``speech_token_num`` (4097) gives the marker ids: 4097 before and 4098 after input speech.
    """
    if not examples:
        raise ValueError("collate() needs at least one example")
    flats = [flatten_example(e, text_vocab_size, speech_token_num, speech_token_num + 1, embed_length)
             for e in examples]
    if pack_max_tokens:
        rows = pack_rows([len(f.ids) for f in flats], pack_max_tokens)
    else:
        rows = [[i] for i in range(len(flats))]
    width = max(sum(len(flats[i].ids) for i in row) for row in rows)
    width = -(-width // pad_to_multiple) * pad_to_multiple
    b = len(rows)
    # Filled in numpy (cheap element-wise copies from Python lists), converted once at the end.
    input_ids = np.zeros((b, width), dtype=np.int64)
    kinds = np.zeros((b, width), dtype=np.uint8)
    labels = np.full((b, width), IGNORE_ID, dtype=np.int64)
    position_ids = np.zeros((b, width), dtype=np.int64)
    speech_in: list[SpeechInSegment] = []
    slots: list[tuple[int, int, int]] = []
    spans: list[tuple[int, int, int]] = []
    keys, tasks, fams = [], [], []
    for r, row in enumerate(rows):
        cur = 0
        for i in row:
            f, n = flats[i], len(flats[i].ids)
            input_ids[r, cur : cur + n] = f.ids
            kinds[r, cur : cur + n] = f.kinds
            # next-token alignment inside the example: position t predicts the token at t+1
            labels[r, cur : cur + n - 1] = f.targets[1:]
            position_ids[r, cur : cur + n] = np.arange(n)
            for off, length, fe in f.audio:
                slots.append((r, cur + off, length))
                speech_in.append(fe)
            spans.append((r, cur, cur + n))
            keys.append(examples[i].key)
            tasks.append(examples[i].task)
            fams.append(examples[i].family)
            cur += n
        if cur < width:  # padding tail: its own "sequence" so nothing real attends to it
            position_ids[r, cur:] = np.arange(width - cur)
    wavs = wav_lens = None
    plans: list = []
    on_device = [seg.wav is not None for seg in speech_in]
    if any(on_device) and not all(on_device):
        raise ValueError("a batch mixes speech inputs with features and with waveforms only")
    if speech_in and all(on_device):  # features are computed on the device (Batch.featurize)
        lens = torch.tensor([int(seg.feats.shape[0]) for seg in speech_in], dtype=torch.long)
        feats = torch.zeros(len(speech_in), 0, speech_in[0].feats.shape[1])
        wav_lens = torch.tensor([int(seg.wav.shape[0]) for seg in speech_in], dtype=torch.long)
        pcm16 = all(seg.wav.dtype == torch.int16 for seg in speech_in)  # else float in [-1, 1]
        wavs = torch.zeros(len(speech_in), int(wav_lens.max()), dtype=torch.int16 if pcm16 else torch.float32)
        for j, seg in enumerate(speech_in):
            w = seg.wav
            wavs[j, : w.shape[0]] = w if pcm16 or w.dtype != torch.int16 else w.float() / 32768.0
        plans = [seg.augment for seg in speech_in]
    elif speech_in:
        t_max = max(int(x.feats.shape[0]) for x in speech_in)
        feats = torch.zeros(len(speech_in), t_max, speech_in[0].feats.shape[1])
        for j, x in enumerate(speech_in):
            feats[j, : x.feats.shape[0]] = x.feats
        lens = torch.tensor([int(x.feats.shape[0]) for x in speech_in], dtype=torch.long)
    else:
        feats = torch.zeros(0, 0, 0)
        lens = torch.zeros(0, dtype=torch.long)
    return Batch(
        input_ids=torch.from_numpy(input_ids), kinds=torch.from_numpy(kinds),
        labels=torch.from_numpy(labels), position_ids=torch.from_numpy(position_ids),
        feats=feats, feats_lengths=lens,
        audio_slots=torch.tensor(slots, dtype=torch.long).reshape(-1, 3),
        keys=keys, tasks=tasks, families=fams, spans=spans,
        wavs=wavs, wav_lengths=wav_lens, augment=plans,
    )
