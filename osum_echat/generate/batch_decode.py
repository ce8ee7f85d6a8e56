"""Batch decoding of raw / shard lists, split over jobs, resumable, merged in input order.

Job ``J`` of ``N`` decodes list lines ``i % N == J`` (or, with fewer lines than jobs, samples
``k % N == J``) into ``O/split/J/`` (``text``, ``think``, ``codes``, ``ref``, ``order``); keys
already in its ``text`` are skipped on a rerun. :func:`merge` writes ``O/text`` (``key<TAB>text``),
``O/think``, ``O/codes`` (``key c1 c2 ...``) and ``O/ref`` in list order (``order`` holds
``line<TAB>sample<TAB>key``). Samples that cannot be decoded (unreadable audio, unknown task,
too short) get an empty hypothesis and a warning, so every key of the list has a line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from osum_echat.audio.features import N_FFT, log_mel_spectrogram
from osum_echat.audio.io import AudioError, load_audio, resample
from osum_echat.data.drops import DropCounter
from osum_echat.data.render import DropSample
from osum_echat.data.sample import Sample
from osum_echat.data.sources import iter_unit, read_list
from osum_echat.data.tasks import canonical_task, frame_codes, get_spec

logger = logging.getLogger(__name__)
FILES = ("text", "think", "codes", "ref", "order")


@dataclass
class Item:
    line: int
    index: int  # sample index inside the line
    sample: Sample
    error: str = ""
    request: Optional[object] = None  # the decode Request once the prompt is built


def iter_items(list_path: str, prefix_map: dict[str, str], data_type: str = "auto",
               nj: int = 1, job_id: int = 0, root: str = "") -> Iterator[Item]:
    """This job's samples of the list, in list order (``root``: ``data.path_root``)."""
    drops = DropCounter()
    lines = read_list(list_path, prefix_map, drops, root)
    by_line = len(lines) >= nj
    k = 0
    for i, line in enumerate(lines):
        if by_line and i % nj != job_id:
            continue
        for j, s in enumerate(iter_unit(line, str(i), prefix_map, drops, data_type, root)):
            if by_line or k % nj == job_id:
                yield Item(i, j, s)
            k += 1
    if drops.total():
        drops.log("list reading")


def _feats(ref, sample_rate: int, n_mels: int):
    wav, sr = load_audio(ref.source(), ref.start, ref.end, name=ref.label())
    wav = resample(wav, sr, sample_rate)
    if wav.numel() < N_FFT:
        raise DropSample("too_short_for_encoder", f"{wav.numel()} samples")
    return log_mel_spectrogram(wav, n_mels)


def prepare(s: Sample, task: Optional[str], sample_rate: int = 16000, n_mels: int = 80,
            boundary: int = 4096) -> Sample:
    """Task override, history codes, and log-mel of the current/history audio (no labels)."""
    if task:
        s.task = task
    s.task = canonical_task(s.task or "<TRANSCRIBE>")
    spec = get_spec(s.task, "understand")
    if spec.speech_in:
        if s.audio is None:
            raise DropSample("missing_field", "audio")
        s.feats = _feats(s.audio, sample_rate, n_mels)
    if spec.history and s.history:
        for n, item in enumerate(s.history, start=1):
            if item.index != n or item.audio is None or item.text is None:
                raise DropSample("history_gap", f"turn {item.index}")
            raw = s.extra.get(f"speech_token_{n}")
            item.codes = frame_codes(raw, boundary)[1:-1] if raw else None
            item.feats = _feats(item.audio, sample_rate, n_mels)
    else:
        s.history = []
    return s


class JobWriter:
    """Appends results of one job; knows which keys are done (resume)."""

    def __init__(self, out_dir: Path, job_id: int) -> None:
        self.dir = Path(out_dir) / "split" / str(job_id)
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in FILES:  # drop a partial last line left by a kill
            p = self.dir / name
            if p.exists():
                data = p.read_bytes()
                if data and not data.endswith(b"\n"):
                    p.write_bytes(data[: data.rfind(b"\n") + 1])
        self.done = {ln.split("\t", 1)[0] for ln in (self.dir / "text").read_text(encoding="utf-8").splitlines()} \
            if (self.dir / "text").exists() else set()

    def write(self, item: Item, text: str, think: Optional[str], codes: Optional[list[int]]) -> None:
        s = item.sample
        key = s.key
        clean = " ".join(text.split())

        def add(name: str, line: str) -> None:
            with open(self.dir / name, "a", encoding="utf-8") as f:
                f.write(line + "\n")

        add("order", f"{item.line}\t{item.index}\t{key}")
        add("ref", f"{key}\t{' '.join(s.txt.split())}")
        if think is not None:
            add("think", f"{key}\t{' '.join(think.split())}")
        if codes is not None:
            add("codes", " ".join([key] + [str(c) for c in codes]))
        add("text", f"{key}\t{clean}")  # last: a key is done once its text line is complete
        self.done.add(key)


def decode_job(bot, list_path: str, out_dir: str | Path, task: Optional[str] = None,
               data_type: str = "auto", nj: int = 1, job_id: int = 0, batch_size: int = 1,
               progress_total: Optional[int] = None) -> int:
    """Decode this job's part of the list with ``bot`` (an EChat); returns samples decoded.
    ``progress_total``: show a tqdm bar (with ETA) over that many samples."""
    cfg = bot.cfg.data
    writer = JobWriter(Path(out_dir), job_id)
    pending: list[Item] = []
    n = 0
    bar = None
    if progress_total is not None:
        from tqdm import tqdm

        bar = tqdm(total=progress_total, desc=f"decode job {job_id}", unit="utt")

    def flush() -> None:
        nonlocal n
        ok = [it for it in pending if not it.error]
        replies = bot.decoder.generate([it.request for it in ok]) if ok else []
        by_id = {id(it): r for it, r in zip(ok, replies)}
        for it in pending:
            spec = get_spec(it.sample.task, "understand") if not it.error else None
            r = by_id.get(id(it))
            think = (r.think if r else "") if (spec is None or spec.think) else None
            codes = (r.speech_codes if r else []) if (spec is None or spec.speech_out) else None
            writer.write(it, r.text if r else "", think, codes)
        n += len(ok)
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    for item in iter_items(list_path, cfg.path_prefix_map, data_type, nj, job_id, cfg.path_root):
        if item.sample.key in writer.done:
            continue
        try:
            prepare(item.sample, task, cfg.sample_rate, cfg.num_mel_bins, cfg.speech_token_num - 1)
            item.request = bot.request(item.sample)
        except (DropSample, AudioError, OSError, ValueError) as err:
            item.error = str(err)
            logger.warning("%s: not decoded (%s); writing an empty hypothesis", item.sample.key, err)
        pending.append(item)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    if bar is not None:
        bar.close()
    return n


def merge(out_dir: str | Path, nj: int) -> int:
    """Merge ``O/split/*`` into ``O/{text,think,codes,ref}`` in list order; returns key count."""
    out = Path(out_dir)
    order: dict[str, tuple[int, int]] = {}
    tables: dict[str, dict[str, str]] = {name: {} for name in FILES[:-1]}
    for j in range(nj):
        d = out / "split" / str(j)
        if not (d / "text").exists():
            raise FileNotFoundError(f"job {j} has no output in {d}")
        for ln in (d / "order").read_text(encoding="utf-8").splitlines():
            a, b, key = ln.split("\t", 2)
            order[key] = (int(a), int(b))
        for name in tables:
            p = d / name
            if p.exists():
                sep = " " if name == "codes" else "\t"
                for ln in p.read_text(encoding="utf-8").splitlines():
                    tables[name][ln.split(sep, 1)[0]] = ln
    keys = sorted(tables["text"], key=lambda k: order.get(k, (1 << 62, 0)))
    for name, rows in tables.items():
        if rows:
            (out / name).write_text("".join(rows[k] + "\n" for k in keys if k in rows), encoding="utf-8")
    return len(keys)

