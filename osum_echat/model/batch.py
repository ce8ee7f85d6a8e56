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
    """User speech as log-mel features (T, 80); becomes [4097] adapter frames [4098]."""

    feats: torch.Tensor


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
    audio: list[tuple[int, int, torch.Tensor]]  # (offset, length, feats)


def flatten_example(
    ex: Example, text_vocab_size: int, speech_bos: int, speech_eos: int,
    embed_length: Callable[[int], int] = speech_embed_length,
) -> _Flat:
    """Lay one example out as flat per-position lists (targets not yet shifted)."""
    ids: list[int] = []
    kinds: list[int] = []
    targets: list[int] = []
    audio: list[tuple[int, int, torch.Tensor]] = []
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
            audio.append((len(ids), n, seg.feats))
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
    feats_list: list[torch.Tensor] = []
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
                feats_list.append(fe)
            spans.append((r, cur, cur + n))
            keys.append(examples[i].key)
            tasks.append(examples[i].task)
            fams.append(examples[i].family)
            cur += n
        if cur < width:  # padding tail: its own "sequence" so nothing real attends to it
            position_ids[r, cur:] = np.arange(width - cur)
    if feats_list:
        t_max = max(int(x.shape[0]) for x in feats_list)
        feats = torch.zeros(len(feats_list), t_max, feats_list[0].shape[1])
        for j, x in enumerate(feats_list):
            feats[j, : x.shape[0]] = x
        lens = torch.tensor([int(x.shape[0]) for x in feats_list], dtype=torch.long)
    else:
        feats = torch.zeros(0, 0, 0)
        lens = torch.zeros(0, dtype=torch.long)
    return Batch(
        input_ids=torch.from_numpy(input_ids), kinds=torch.from_numpy(kinds),
        labels=torch.from_numpy(labels), position_ids=torch.from_numpy(position_ids),
        feats=feats, feats_lengths=lens,
        audio_slots=torch.tensor(slots, dtype=torch.long).reshape(-1, 3),
        keys=keys, tasks=tasks, families=fams, spans=spans,
    )
