"""Counting of dropped samples: every drop has a reason, nothing is silent, nothing is fatal."""

from __future__ import annotations

import logging
from collections import Counter

logger = logging.getLogger(__name__)

# The reasons the pipeline produces (free strings are allowed, these are the documented ones).
REASONS = {
    "bad_list_line": "list line malformed (not 'META|TAR' with one '|', or empty part)",
    "unreadable_list": "list / metadata / raw jsonl file cannot be opened",
    "unreadable_tar": "tar cannot be opened or is truncated",
    "bad_json": "a raw jsonl line, metadata line or '.extra' member is not valid JSON",
    "missing_field": "key / txt / task / audio missing where the task needs it",
    "unreadable_audio": "audio cannot be decoded (or is empty)",
    "unknown_task": "task tag not in the catalogue (data.unknown_task = drop)",
    "unsupported_task": "task needs what the prompt style lacks (plain/OSUM: no history, no speech output)",
    "wrong_family": "task belongs to another family than the list it came from",
    "empty_label": "supervised text empty after normalisation / tag handling",
    "missing_think": "think task without think_str (language) / q_txt+question (tag)",
    "missing_question": "t2t task without extra.question",
    "missing_speech_codes": "speech-output task without a non-empty extra.speech_token",
    "bad_speech_codes": "speech codes not integers in 0..4095",
    "history_gap": "history turns not numbered 1..N, or a turn lacks its audio or text",
    "not_in_metadata": "combine: tar key absent from the metadata jsonl",
    "not_in_tar": "combine: metadata key never seen in its tar",
    "tar_out_of_order": "tar members of a key not contiguous (key reappears later)",
    "too_short": "fewer frames than data.filter.min_frames",
    "too_short_for_encoder": "audio shorter than one STFT window (no adapter frame)",
    "too_long": "more frames than data.filter.max_frames",
    "label_too_short": "fewer label tokens than filter.min_label_tokens",
    "label_too_long": "more label tokens than filter.max_label_tokens",
    "too_many_codes": "more speech codes than filter.max_speech_codes",
    "seq_too_long": "example longer than filter.max_seq_len LLM positions",
    "speech_text_ratio": "speech codes too few for the text (ratio / streaming 3*text <= speech)",
    "banned_text": "answer contains a filter.banned_substrings entry",
}


class DropCounter:
    """Counts drops by reason; mergeable (workers send deltas, the main process merges)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()

    def add(self, reason: str, key: str = "", detail: str = "", n: int = 1) -> None:
        self.counts[reason] += n
        if self.counts[reason] <= 3:  # the first few of each reason are worth a look
            logger.warning("dropped %s: %s %s", key or "?", reason, detail)

    def merge(self, other: dict[str, int] | DropCounter) -> None:
        data = other.counts if isinstance(other, DropCounter) else other
        for k, v in data.items():
            self.counts[k] += int(v)

    def delta(self) -> dict[str, int]:
        """Counts added since the previous call (what a worker ships with each batch)."""
        out = {k: v - self._reported[k] for k, v in self.counts.items() if v != self._reported[k]}
        self._reported = Counter(self.counts)
        return out

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def log(self, where: str = "") -> None:
        if self.counts:
            logger.info("drops%s: total %d %s", f" ({where})" if where else "", self.total(),
                        self.as_dict())
