"""Text rendering shared by training and inference: tokenised fixed pieces, instructions,
supervised labels (with the unknown-tag ``<&&>`` holes) and the two think styles.

The think style ('language' | 'tag', ``text.think_style``) is a switch of this one code path:

* language: ``<think>{extra.think_str}<think end>{answer}``; a leading emotion tag of chat
  answers is removed (``"<开心>真好"`` -> ``"真好"``);
* tag: the fixed Chinese template of ``tag_think_final.pt`` (docs/upstream_compat.md) built from
  ``extra.q_txt|question, age, gender, q_emotion, caption`` and the answer's leading emotion
  tag (kept; ``<中立>`` when absent or not in the answer-emotion set). Missing attributes become
  the don't-care tag ``<&&>`` with probability ``tag_think_unknown_rate``, else a default.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import yaml

from osum_echat.text import prompts as P
from osum_echat.text.normalize import split_leading_tag
from osum_echat.text.tokenizer import SpecialIds, encode

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSWER_EMOTIONS = ("愉悦", "抱歉", "开心", "愤怒", "惊讶", "厌恶", "悲伤", "害怕", "哭腔", "安慰鼓励", "中立")
NEUTRAL_ANSWER = "<中立>"
# (slot label, extra key, default when absent and not in unknown mode)
TAG_THINK_SLOTS = (("年龄为", "age", "<ADULT>"), ("性别为", "gender", "<MALE>"),
                   ("情感为", "q_emotion", "<NEUTRAL>"), ("声音事件为", "caption", "<OTHER>"))
TAG_THINK_CLOSE = "我应该综合用户的语义和副语言信息给出专业且对应的回答"


class DropSample(Exception):
    """A sample that cannot become an example; ``reason`` is a DropCounter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def load_prompt_files(files: Iterable[str | Path]) -> dict[str, list[str]]:
    """Merge YAML files ``{task string: [instruction, ...]}`` (paths relative to the CWD or,
    failing that, to the repository root)."""
    out: dict[str, list[str]] = {}
    for f in files:
        path = Path(f)
        if not path.is_file() and not path.is_absolute():
            path = REPO_ROOT / f
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        for task, items in data.items():
            key = " ".join(str(task).split())
            out.setdefault(key, []).extend(str(x) for x in items)
    return out


def _bracket(v: str) -> str:
    v = str(v).strip()
    return v if v.startswith("<") and v.endswith(">") else f"<{v}>"


class Renderer:
    """Tokenizer + the conditioning strings, with the fixed pieces tokenised once.

    ``text_vocab_size`` only feeds :class:`SpecialIds`; ``speech_token_num`` (4097) gives the
    speech boundary id ``speech_token_num - 1`` (4096).
    """

    def __init__(self, tokenizer, think_style: str = "language",
                 instructions: dict[str, list[str]] | None = None,
                 text_vocab_size: int | None = None, speech_token_num: int = 4097,
                 tag_think_unknown_rate: float = 0.85, num_mel_bins: int = 80,
                 streaming_chunks: tuple[int, int] = (6, 18), prompt_style: str = "chatml",
                 lowercase_labels: bool = False) -> None:
        if think_style not in ("language", "tag"):
            raise ValueError(f"think_style must be 'language' or 'tag', got {think_style!r}")
        if prompt_style not in ("chatml", "plain"):
            raise ValueError(f"prompt_style must be 'chatml' or 'plain', got {prompt_style!r}")
        self.tok = tokenizer
        self.think_style = think_style
        self.instructions = instructions or {}
        self.ids = SpecialIds.from_tokenizer(tokenizer, text_vocab_size)
        self.speech_boundary = speech_token_num - 1
        self.speech_token_num = speech_token_num
        self.unknown_rate = tag_think_unknown_rate
        self.num_mel_bins = num_mel_bins
        self.streaming_chunks = streaming_chunks
        # 'chatml' (OSUM-EChat) wraps turns in ChatML and ends answers with <|im_end|>; 'plain'
        # (OSUM) has no system prompt or turn markers and ends answers with <|endoftext|>.
        self.prompt_style = prompt_style
        self.lowercase_labels = lowercase_labels
        chat = prompt_style == "chatml"
        self.user_start = self.encode(P.USER_START) if chat else []
        self.assistant_start = self.encode(P.ASSISTANT_START) if chat else []
        self.text_end = self.ids.im_end if chat else self.ids.endoftext
        self.newline = self.encode("\n")
        self._system: dict[str, list[int]] = {}
        self._fast = bool(getattr(tokenizer, "is_fast", False))

    # -- pieces -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return encode(self.tok, text)

    def system(self, key: str) -> list[int]:
        """Ids of ``<|im_start|>system\\n{prompt}<|im_end|>\\n`` (cached); none in plain style."""
        if self.prompt_style == "plain":
            return []
        if key not in self._system:
            self._system[key] = self.encode(P.system_block(key))
        return self._system[key]

    def placeholder_feats(self) -> torch.Tensor:
        """(0, F) stand-in for speech features not computed yet."""
        return torch.zeros(0, self.num_mel_bins)

    def instruction(self, task: str, rng: random.Random) -> str | None:
        items = self.instructions.get(task)
        return rng.choice(items) if items else None

    # -- labels -------------------------------------------------------------------------
    def label(self, text: str, no_loss_spans: Sequence[tuple[int, int]] = ()
              ) -> tuple[list[int], tuple[int, ...]]:
        """Supervised ids of ``text`` + the answer end (``<|im_end|>``, or ``<|endoftext|>`` in
        plain style) and the positions that carry no loss:
        the tokens strictly inside the ``<`` ``>`` of every ``<&&>`` and the tokens inside the
        character ranges ``[a, b)`` of ``no_loss_spans`` (a given think, :meth:`given_think_span`),
        found from the token character offsets, so the ids are exactly those of tokenising the
        whole text."""
        ids, no_loss = self._encode_with_holes(text, tuple(no_loss_spans))
        return ids + [self.text_end], no_loss

    def _encode_with_holes(self, text: str, extra_spans: tuple[tuple[int, int], ...] = ()
                           ) -> tuple[list[int], tuple[int, ...]]:
        spans = [(a, b) for a, b in extra_spans if b > a]
        pos = text.find(P.UNKNOWN_TAG)
        while pos != -1:
            spans.append((pos + 1, pos + len(P.UNKNOWN_TAG) - 1))
            pos = text.find(P.UNKNOWN_TAG, pos + 1)
        if not spans:
            return self.encode(text), ()
        if self._fast:
            enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        else:  # slow tokenizers have no offsets: tokenise piecewise (ids may differ slightly)
            cuts = {0, len(text)} | {p for span in extra_spans for p in span if 0 < p < len(text)}
            ids, offsets, cur = [], [], 0
            for piece in _split_keep(text, P.UNKNOWN_TAG):
                inner = sorted(c - cur for c in cuts if cur < c < cur + len(piece))
                for a, b in zip([0] + inner, inner + [len(piece)]):
                    for i in self.encode(piece[a:b]):
                        ids.append(i)
                        offsets.append((cur + a, cur + b))
                cur += len(piece)
        holes = tuple(j for j, (a, b) in enumerate(offsets)
                      if b > a and any(lo <= a and b <= hi for lo, hi in spans))
        return ids, holes

    @staticmethod
    def given_think_span(text: str) -> tuple[tuple[int, int], ...]:
        """The character range of the think inside ``<think>..<think end>`` of a label text
        (empty when it has none): the span of a think that is given, not learnt
        (``extra.think_loss: false``; docs/data.md). The think markers keep their loss."""
        start, end = text.find(P.THINK_OPEN), text.find(P.THINK_CLOSE)
        if start < 0 or end < start:
            return ()
        return ((start + len(P.THINK_OPEN), end),)

    def answer_text(self, text: str, chat: bool) -> str:
        """Language style: drop a leading emotion tag of a chat answer; tag style: keep it
        (``<中立>`` when absent or unknown). Non-chat texts pass unchanged."""
        if not chat:
            return text
        tag, rest = split_leading_tag(text)
        if self.think_style == "language":
            return rest if tag is not None else text
        if tag is None or tag not in ANSWER_EMOTIONS:
            return NEUTRAL_ANSWER + rest
        return text

    def think_text(self, extra: dict, answer: str, rng: random.Random) -> str:
        """The CoT-prefixed label text of a think task (answer already via answer_text)."""
        if self.think_style == "language":
            think = str(extra.get("think_str") or "").strip()
            if not think:
                raise DropSample("missing_think", "extra.think_str")
            return P.wrap_think(think, answer)
        q = str(extra.get("q_txt") or extra.get("question") or "").strip()
        if not q:
            raise DropSample("missing_think", "extra.q_txt / extra.question")
        unknown = rng.random() < self.unknown_rate
        parts = [f"用户说的话是:{q}"]
        for label, key, default in TAG_THINK_SLOTS:
            v = extra.get(key)
            value = _bracket(v) if v not in (None, "") else (P.UNKNOWN_TAG if unknown else default)
            parts.append(f"{label}:{value}")
        tag, _ = split_leading_tag(answer)
        parts.append(f"推测使用的回复情感为:<{tag}>")
        parts.append(TAG_THINK_CLOSE)
        return P.wrap_think(",".join(parts), answer)


def _split_keep(text: str, marker: str) -> list[str]:
    out: list[str] = []
    for i, piece in enumerate(text.split(marker)):
        if i:
            out.append(marker)
        if piece:
            out.append(piece)
    return out
