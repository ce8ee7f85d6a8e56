"""Counting of dropped samples: every drop has a reason, nothing is silent, nothing is fatal.

The console shows the first few drops of each reason; every drop (key, origin, reason, detail)
can be kept as a record and written to a JSON-lines file (``model_dir/drops.jsonl`` in
training, ``inspect_data --drops_out``), see :class:`DropFile`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# The reasons the pipeline produces (free strings are allowed, these are the documented ones).
REASONS = {
    "bad_list_line": "list line malformed (not 'META|TAR' with one '|', or empty part)",
    "bad_encoding": "a list / jsonl / metadata line that is not UTF-8 (the rest of the file is read)",
    "unreadable_list": "list / metadata / raw jsonl file cannot be opened",
    "unreadable_tar": "tar cannot be opened or is truncated (the lost member is named)",
    "bad_json": "a raw jsonl line, metadata line or '.extra' member is not valid JSON",
    "missing_field": "key / txt / task / audio missing where the task needs it",
    "unreadable_audio": "audio file not found, or cannot be decoded (or is empty)",
    "unknown_task": "task tag not in the catalogue (data.unknown_task = drop)",
    "unsupported_task": "task needs what the prompt style lacks (plain/OSUM: no history, no speech output)",
    "wrong_family": "task belongs to another family than the list it came from",
    "empty_label": "supervised text empty after normalisation / tag handling",
    "missing_think": "think task without think_str (language) / q_txt+question (tag)",
    "missing_question": "t2t task without extra.question",
    "missing_speech_codes": "speech-output task without a non-empty extra.speech_token",
    "bad_speech_codes": "speech codes not integers in 0..4095",
    "text_loss_without_speech": "extra.text_loss false on a task without speech output (no target left)",
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

CONSOLE_PER_REASON = 3  # drops of one reason shown on the console (all go to the drops file)


def format_drop(rec: dict[str, Any]) -> str:
    """One console line: ``dropped KEY (ORIGIN): REASON: DETAIL``."""
    where = f" ({rec['origin']})" if rec.get("origin") else ""
    detail = f": {rec['detail']}" if rec.get("detail") else ""
    return f"dropped {rec.get('key') or '?'}{where}: {rec['reason']}{detail}"


class DropCounter:
    """Counts drops by reason; mergeable (workers send deltas, the main process merges).

    ``collect``: keep every drop as a record until :meth:`take_records` (what a worker ships
    to the main process with each batch). ``quiet``: count without console lines.
    """

    def __init__(self, collect: bool = False, quiet: bool = False) -> None:
        self.counts: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self.collect, self.quiet = collect, quiet
        self.records: list[dict[str, Any]] = []

    def add(self, reason: str, key: str = "", detail: str = "", n: int = 1, origin: str = "",
            path: str | None = None) -> None:
        """Count ``n`` drops of ``reason``. ``origin``: where the record is (``list:line``,
        ``file.jsonl:line``, ``shard.tar``); ``path``: a file that was not found (for hints)."""
        self.counts[reason] += n
        rec: dict[str, Any] = {"key": key, "origin": origin, "reason": reason, "detail": detail}
        if path is not None:
            rec["path"] = path
        if self.collect:
            self.records.append(rec)
        if self.quiet:
            return
        if self.counts[reason] <= CONSOLE_PER_REASON:  # the first few of each reason are worth a look
            logger.warning("%s", format_drop(rec))
            if self.counts[reason] == CONSOLE_PER_REASON:
                logger.warning("further '%s' drops are only counted (and listed in the drops file)", reason)

    def take_records(self) -> list[dict[str, Any]]:
        out, self.records = self.records, []
        return out

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


class DropFile:
    """Appends drop records as JSON lines (one writer per process: the main process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, records: list[dict[str, Any]], **fields: Any) -> None:
        if not records:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps({**rec, **fields}, ensure_ascii=False) + "\n")
