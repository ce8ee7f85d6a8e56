"""Data-format writers (the library behind ``common_utils/*.py``):

* :func:`make_shards`: raw jsonl -> tars of N utterances, resumable (``.finished`` markers),
  parallel, plus ``shards_list.txt``;
* :func:`make_combine`: shards -> combine directory (per-tar metadata jsonl, re-labelled or
  subset, tars untouched) + ``combines_list.txt`` / ``combines_tar_root.txt`` / ``data.list``;
* :func:`expand_data_lists`: data-list YAML ``name: {path, weight, [family]}`` -> training
  lists of ``META|TAR`` lines, seeded (reproducible).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import tarfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from osum_echat.data.sources import _HIST_KEY, map_path, read_list

logger = logging.getLogger(__name__)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _audio_bytes(path: str, start: float | None, end: float | None) -> tuple[bytes, str]:
    """Original file bytes (any format); a start/end segment is cut and written as WAV."""
    if start is None:
        return Path(path).read_bytes(), path.rsplit(".", 1)[-1].lower()
    import soundfile as sf

    from osum_echat.audio.io import load_audio

    wav, sr = load_audio(path, start, end)
    buf = io.BytesIO()
    sf.write(buf, wav.numpy(), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue(), "wav"


def write_shard(records: list[dict], tar_path: str, prefix_map: dict[str, str]) -> int:
    """One tar from raw records; returns the number of utterances written (bad ones skipped,
    logged). Members: txt, audio (original format), task, extra (JSON), txt_N / wav_N."""
    tmp = tar_path + ".tmp"
    written = 0
    with tarfile.open(tmp, "w") as tar:
        for rec in records:
            key = rec.get("key")
            try:
                members: list[tuple[str, bytes]] = [("txt", str(rec["txt"]).encode("utf-8"))]
                if rec.get("wav"):
                    data, suffix = _audio_bytes(map_path(str(rec["wav"]), prefix_map),
                                                rec.get("start"), rec.get("end"))
                    members.append((suffix, data))
                members.append(("task", str(rec.get("task", "<TRANSCRIBE>")).encode("utf-8")))
                extra = rec.get("extra") or {}
                if isinstance(extra, str):
                    extra = json.loads(extra)
                extra = {k: v for k, v in extra.items() if k != "duration"}
                members.append(("extra", json.dumps(extra, ensure_ascii=False).encode("utf-8")))
                for k, v in sorted(rec.items()):
                    m = _HIST_KEY.match(k)
                    if m and m.group(1) == "txt":
                        members.append((k, str(v).encode("utf-8")))
                    elif m:
                        members.append((k, Path(map_path(str(v), prefix_map)).read_bytes()))
            except (OSError, KeyError, ValueError) as err:
                logger.warning("make_shards: skipping %s: %s", key, err)
                continue
            for suffix, data in members:
                _add(tar, f"{key}.{suffix}", data)
            written += 1
    os.replace(tmp, tar_path)
    Path(tar_path + ".finished").touch()
    return written


def _write_shard_job(args: tuple[list[dict], str, dict[str, str]]) -> int:
    return write_shard(*args)


def read_raw_records(paths: Iterable[str]) -> list[dict]:
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        logger.warning("%s:%d: bad JSON line skipped", p, i + 1)
    return out


def make_shards(raw_lists: Iterable[str], out_dir: str, num_per_tar: int = 1000,
                prefix: str = "shards", nj: int = 1, prefix_map: dict[str, str] | None = None,
                shuffle_seed: int | None = None) -> list[str]:
    """Raw jsonl files -> ``out_dir/<prefix>_%09d.tar`` + ``shards_list.txt``. Tars with a
    ``.finished`` marker are kept (re-runs resume). Returns the tar paths."""
    records = read_raw_records(raw_lists)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(records)
    os.makedirs(out_dir, exist_ok=True)
    jobs, tars = [], []
    for i in range(0, len(records), num_per_tar):
        tar = os.path.join(os.path.abspath(out_dir), f"{prefix}_{i // num_per_tar:09d}.tar")
        tars.append(tar)
        if os.path.exists(tar + ".finished") and os.path.exists(tar):
            continue
        jobs.append((records[i:i + num_per_tar], tar, prefix_map or {}))
    if nj > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(nj) as pool:
            list(pool.map(_write_shard_job, jobs))
    else:
        for job in jobs:
            _write_shard_job(job)
    with open(os.path.join(out_dir, "shards_list.txt"), "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in tars)
    logger.info("make_shards: %d utterances, %d tars (%d written now)", len(records), len(tars), len(jobs))
    return tars


def tar_metadata(tar_path: str) -> list[dict]:
    """Metadata records of a shard without reading its audio (key, txt, task, extra)."""
    recs: dict[str, dict] = {}
    with open(tar_path, "rb") as fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
        for member in tar:
            pos = member.name.rfind(".")
            if not member.isfile() or pos <= 0:
                continue
            key, suffix = member.name[:pos], member.name[pos + 1:]
            if suffix in ("txt", "task", "extra") or (suffix.startswith("txt_") and _HIST_KEY.match(suffix)):
                rec = recs.setdefault(key, {"key": key})
                text = tar.extractfile(member).read().decode("utf-8", "replace")
                rec[suffix] = json.loads(text) if suffix == "extra" else text.strip()
            else:
                recs.setdefault(key, {"key": key})
    return list(recs.values())


def make_combine(shard_list: str, out_dir: str, task: str | None = None,
                 relabel: Callable[[dict], dict | None] | None = None,
                 prefix_map: dict[str, str] | None = None) -> str:
    """Shards -> combine directory. ``task`` forces a task tag; ``relabel(rec)`` may edit a
    record or return None to leave it out (subset). Returns ``combines_list.txt``'s path."""
    prefix_map = prefix_map or {}
    tars = [ln.split("|")[-1] for ln in read_list(shard_list, prefix_map)]
    roots = {os.path.dirname(os.path.abspath(map_path(t, prefix_map))) for t in tars}
    if len(roots) != 1:
        raise ValueError(f"combine needs all tars in one directory, got {sorted(roots)}")
    os.makedirs(out_dir, exist_ok=True)
    metas, all_lines = [], []
    for tar in tars:
        tar = map_path(tar, prefix_map)
        stem = os.path.splitext(os.path.basename(tar))[0]
        lines = []
        for rec in tar_metadata(tar):
            rec.setdefault("txt", "")
            rec.setdefault("extra", {})
            if task:
                rec["task"] = task
            if "question" in rec["extra"] and "q_txt" not in rec["extra"]:
                rec["extra"]["q_txt"] = rec["extra"]["question"]
            rec = relabel(rec) if relabel else rec
            if rec is None:
                continue
            rec.update(wav="only-meta", tar_path_key=stem)
            lines.append(json.dumps(rec, ensure_ascii=False))
        meta = os.path.join(os.path.abspath(out_dir), f"{stem}.list")
        Path(meta).write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        metas.append(meta)
        all_lines += lines
    Path(out_dir, "combines_list.txt").write_text("".join(m + "\n" for m in metas), encoding="utf-8")
    Path(out_dir, "combines_tar_root.txt").write_text(roots.pop() + "\n", encoding="utf-8")
    Path(out_dir, "data.list").write_text("".join(ln + "\n" for ln in all_lines), encoding="utf-8")
    return str(Path(out_dir, "combines_list.txt"))


def _entry_lines(path: str, prefix_map: dict[str, str]) -> list[str]:
    """Training lines of one dataset list: combine -> META|TAR, tars -> -|TAR, else as is."""
    out = []
    for ln in read_list(path, prefix_map):
        if "|" in ln or ln.startswith("{"):
            out.append(ln)
        elif ln.endswith(".tar"):
            out.append(f"-|{ln}")
        else:
            out.append(ln)
    return out


def expand_data_lists(yaml_path: str, seed: int = 777,
                      prefix_map: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Data-list YAML -> {family (or 'all'): shuffled lines}.

    Each entry ``name: {path, weight=1, family=None}``: the integer part of the weight repeats
    the list's lines, the fractional part adds a seeded random subset of that fraction (so
    0.3 keeps 30 %, 2.5 gives two copies plus half). Everything is seeded by ``seed``."""
    with open(yaml_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f) or {}
    out: dict[str, list[str]] = {}
    for name, entry in spec.items():
        if not isinstance(entry, dict) or not entry.get("path"):
            logger.warning("%s: entry %s has no path, skipped", yaml_path, name)
            continue
        weight = float(entry.get("weight", 1.0))
        if weight < 0:
            raise ValueError(f"{yaml_path}: {name}: negative weight {weight}")
        lines = _entry_lines(str(entry["path"]), prefix_map or {})
        reps, frac = int(weight), weight - int(weight)
        picked = lines * reps
        if frac > 0:
            rng = random.Random(f"{seed}|{name}")
            idx = sorted(rng.sample(range(len(lines)), round(len(lines) * frac)))
            picked += [lines[i] for i in idx]
        out.setdefault(str(entry.get("family", "all")), []).extend(picked)
    for fam, lines in out.items():
        random.Random(f"{seed}|shuffle|{fam}").shuffle(lines)
    return out

