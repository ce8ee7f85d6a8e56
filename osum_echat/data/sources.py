"""Sources: list files -> units (list lines) -> :class:`Sample` records, for the three
upstream storage types, read unchanged.

* raw: jsonl records ``{key, wav, txt, task, extra, [start, end], [txt_N, wav_N]}``; a list
  may hold the records themselves or paths of raw jsonl files;
* shard: tars of ``<key>.<suffix>`` members (split at the LAST dot, contiguous per key);
* combine: ``META|TAR``: the tar gives the audio, the per-tar metadata jsonl (merged BY KEY)
  gives txt/task/extra. ``tas_tag`` (upstream's misspelling in its own sample data) is
  accepted as an alias of ``task`` with a warning.

List lines: ``META|TAR`` (``-|TAR`` = plain shard), a tar path, a raw jsonl path, or a raw
JSON record. ``combines_list.txt`` files are expanded with their ``combines_tar_root.txt``.
Audio stays encoded (:class:`AudioRef`) until the decode stage, so cheap filters run first.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tarfile
from collections.abc import Iterator
from typing import Any

import soundfile as sf

from osum_echat.data.drops import DropCounter
from osum_echat.data.sample import AUDIO_SUFFIXES, AudioRef, HistoryItem, Sample
from osum_echat.data.tar_reader import TarFormatError, iter_tar_members

logger = logging.getLogger(__name__)

_HIST_KEY = re.compile(r"^(txt|wav)_(\d+)$")
_warned_tas_tag: set[str] = set()


def map_path(path: str, prefix_map: dict[str, str], root: str = "") -> str:
    """Rewrite the first matching prefix of ``path`` (e.g. upstream-relative sample paths);
    then a still relative path is joined to ``root`` (``data.path_root``; empty = relative to
    the working directory, as in WeNet)."""
    for old, new in prefix_map.items():
        if path.startswith(old):
            path = new + path[len(old):]
            break
    if root and not os.path.isabs(path):
        path = os.path.join(root, path)
    return path


class ListLine(str):
    """A list line that also knows where it was read (``origin`` = ``list_path:line``)."""

    origin: str = ""

    @classmethod
    def at(cls, text: str, origin: str) -> "ListLine":
        out = cls(text)
        out.origin = origin
        return out


def read_lines(path: str, drops: DropCounter) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-empty lines of a UTF-8 text file; a line
    that is not UTF-8 is dropped and counted (``bad_encoding``, with file and line) and the
    rest of the file is read. Raises OSError when the file cannot be opened."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for i, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            drops.add("bad_encoding", "", f"not UTF-8 at byte {err.start}: {raw[:40]!r}",
                      origin=f"{path}:{i}")
            continue
        if text:
            out.append((i, text.lstrip("\ufeff") if i == 1 else text))
    return out


def _not_found(path: str) -> str:
    where = "" if os.path.isabs(path) else f" (relative to the working directory {os.getcwd()})"
    return f"file not found: {path}{where}"


def read_list(path: str, prefix_map: dict[str, str] | None = None, drops: DropCounter | None = None,
              root: str = "") -> list[ListLine]:
    """Units of a list file (one per non-empty line); a tar path is a list of itself.

    ``combines_list.txt`` lines (metadata paths) become ``META|<tar_root>/<stem>.tar``; every
    other file is returned line by line (records, tar paths, ``META|TAR`` lines, jsonl paths).
    Each unit knows its ``origin`` (list file and line). Lines that are not UTF-8 are counted
    in ``drops`` (``bad_encoding``). A list that cannot be opened raises ``FileNotFoundError``
    / ``OSError`` naming it.
    """
    prefix_map = prefix_map or {}
    drops = drops if drops is not None else DropCounter()
    if path.endswith((".tar", ".tar.gz", ".tgz")):  # a single shard given as the list
        return [ListLine.at(map_path(path, prefix_map), path)]
    real = map_path(path, prefix_map)
    if not os.path.isfile(real):
        raise FileNotFoundError(f"data list {_not_found(real)}")
    lines = read_lines(real, drops)
    if os.path.basename(path) == "combines_list.txt":
        root_file = os.path.join(os.path.dirname(real), "combines_tar_root.txt")
        if not os.path.isfile(root_file):
            raise FileNotFoundError(f"combines_list.txt needs its tar root: {_not_found(root_file)}")
        roots = read_lines(root_file, drops)
        if not roots:
            raise ValueError(f"{root_file}: empty (expected the folder of the combine tars)")
        tar_root = map_path(roots[0][1].rstrip("/"), prefix_map, root)
        out = []
        for i, meta in lines:
            stem = os.path.splitext(os.path.basename(meta))[0]
            out.append(ListLine.at(f"{map_path(meta, prefix_map, root)}|{tar_root}/{stem}.tar",
                                   f"{real}:{i}"))
        return out
    return [ListLine.at(text, f"{real}:{i}") for i, text in lines]


def parse_extra(value: Any) -> dict | None:
    """``extra`` as a dict: dicts pass, JSON strings are decoded, None/'' -> {}; else None."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, (str, bytes)):
        try:
            out = json.loads(value)
        except ValueError:
            return None
        return out if isinstance(out, dict) else None
    return None


def _task_of(rec: dict, origin: str) -> str:
    task = rec.get("task")
    if task is None and "tas_tag" in rec:
        source = origin.rsplit(":", 1)[0] if origin.rsplit(":", 1)[-1].isdigit() else origin
        if source not in _warned_tas_tag:  # once per file, not per line
            _warned_tas_tag.add(source)
            logger.warning("%s: no 'task' field, using 'tas_tag' (upstream misspelling) as task", source)
        task = rec["tas_tag"]
    return str(task).strip() if task is not None else ""


def record_to_sample(rec: Any, uid: str, origin: str, prefix_map: dict[str, str],
                     drops: DropCounter, root: str = "") -> Sample | None:
    """A raw jsonl record -> Sample (None, counted, when it is unusable). ``origin`` names
    where the record is (``file:line`` or the tar) in messages."""
    if not isinstance(rec, dict):
        drops.add("bad_json", "", "record is not an object", origin=origin)
        return None
    key = rec.get("key")
    if not key or rec.get("txt") is None:
        missing = [f for f in ("key", "txt") if not rec.get(f) and (f == "key" or rec.get(f) is None)]
        drops.add("missing_field", str(key or ""), "no " + "/".join(missing), origin=origin)
        return None
    extra = parse_extra(rec.get("extra"))
    if extra is None:
        drops.add("bad_json", str(key), "'extra' is not a JSON object", origin=origin)
        return None
    audio = None
    wav = rec.get("wav")
    if wav and wav != "only-meta":
        start, end = rec.get("start"), rec.get("end")
        audio = AudioRef(path=map_path(str(wav), prefix_map, root), suffix=str(wav).rsplit(".", 1)[-1],
                         start=None if start is None else float(start),
                         end=None if end is None else float(end))
    turns: dict[int, HistoryItem] = {}
    for k, v in rec.items():
        m = _HIST_KEY.match(k)
        if m:
            item = turns.setdefault(int(m.group(2)), HistoryItem(index=int(m.group(2))))
            if m.group(1) == "txt":
                item.text = str(v).strip()
            else:
                item.audio = AudioRef(path=map_path(str(v), prefix_map, root), suffix=str(v).rsplit(".", 1)[-1])
    return Sample(key=str(key), txt=str(rec["txt"]).strip(), task=_task_of(rec, origin), extra=extra,
                  audio=audio, history=[turns[i] for i in sorted(turns)], uid=uid, origin=origin)


def iter_raw_lines(lines: list[tuple[str, str]], uid_prefix: str, prefix_map: dict[str, str],
                   drops: DropCounter, root: str = "") -> Iterator[Sample]:
    """Samples of raw JSON records given as (origin ``file:line``, text)."""
    for origin, line in lines:
        try:
            rec = json.loads(line)
        except ValueError as err:
            drops.add("bad_json", "", f"{err}: {line[:60]}", origin=origin)
            continue
        s = record_to_sample(rec, f"{rec.get('key')}#{uid_prefix}" if isinstance(rec, dict) else "",
                             origin, prefix_map, drops, root)
        if s is not None:
            yield s


def iter_tar_groups(path: str, drops: DropCounter) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) per key, in tar order. Members split at the LAST dot of the name;
    a key that reappears after another key is dropped ('tar_out_of_order')."""
    seen: set[str] = set()
    key: str | None = None
    group: dict[str, bytes] = {}
    skipping = False
    if not os.path.isfile(path):
        drops.add("unreadable_tar", "", _not_found(path), origin=path, path=path)
        return
    try:
        for name, data in iter_tar_members(path):
            pos = name.rfind(".")
            if pos <= 0:
                continue
            prefix, suffix = name[:pos], name[pos + 1:]
            if prefix != key:
                if key is not None and group and not skipping:
                    yield key, group
                skipping = prefix in seen
                if skipping:
                    drops.add("tar_out_of_order", prefix, f"member {name} after other keys", origin=path)
                seen.add(prefix)
                key, group = prefix, {}
            if not skipping:
                group[suffix] = data
    except (OSError, tarfile.TarError, EOFError, TarFormatError) as err:
        lost = getattr(err, "member", None)
        lost_key = lost[:lost.rfind(".")] if lost and lost.rfind(".") > 0 else None
        if key is not None and group and not skipping:
            if lost_key is not None and lost_key != key:  # the previous key was complete
                yield key, group
            else:  # the key being read lost a member (or which one is unknown): drop it
                lost_key = lost_key or key
        drops.add("unreadable_tar", lost_key or "", f"{err}; the rest of the tar is skipped", origin=path)
        return
    if key is not None and group and not skipping:
        yield key, group


def _group_fields(key: str, group: dict[str, bytes], origin: str,
                  drops: DropCounter) -> dict[str, Any] | None:
    """Tar member group -> a raw-like record (extra still JSON text) + audio refs."""
    rec: dict[str, Any] = {"key": key}
    turns: dict[int, HistoryItem] = {}
    for suffix, data in group.items():
        m = _HIST_KEY.match(suffix)
        if m:
            item = turns.setdefault(int(m.group(2)), HistoryItem(index=int(m.group(2))))
            if m.group(1) == "txt":
                item.text = data.decode("utf-8", "replace").strip()
            else:
                item.audio = AudioRef(data=data, suffix="wav", name=f"member {key}.{suffix} of {origin}")
        elif suffix in ("txt", "task"):
            rec[suffix] = data.decode("utf-8", "replace").strip()
        elif suffix == "extra":
            rec["extra"] = data.decode("utf-8", "replace")
        elif suffix in AUDIO_SUFFIXES:
            rec["__audio__"] = AudioRef(data=data, suffix=suffix, name=f"member {key}.{suffix} of {origin}")
    rec["__history__"] = turns
    return rec


def _finish(rec: dict[str, Any], uid: str, origin: str, drops: DropCounter) -> Sample | None:
    audio = rec.pop("__audio__", None)
    turns = rec.pop("__history__", {})
    s = record_to_sample(rec, uid, origin, {}, drops)
    if s is None:
        return None
    s.audio = audio
    s.history = [turns[i] for i in sorted(turns)]
    return s


def load_metadata(path: str, drops: DropCounter) -> dict[str, dict] | None:
    """Per-tar metadata jsonl -> {key: record}; bad lines counted ('bad_json', 'bad_encoding')."""
    try:
        lines = read_lines(path, drops)
    except OSError as err:
        drops.add("unreadable_list", "", _not_found(path) if isinstance(err, FileNotFoundError) else str(err),
                  origin=path, path=path if isinstance(err, FileNotFoundError) else None)
        return None
    out: dict[str, dict] = {}
    for i, line in lines:
        try:
            rec = json.loads(line)
        except ValueError as err:
            drops.add("bad_json", "", f"{err}: {line[:60]}", origin=f"{path}:{i}")
            continue
        if isinstance(rec, dict) and rec.get("key"):
            out[str(rec["key"])] = rec
        else:
            drops.add("missing_field", "", "no key", origin=f"{path}:{i}")
    return out


def iter_unit(line: str, uid: str, prefix_map: dict[str, str], drops: DropCounter,
              data_type: str = "auto", root: str = "") -> Iterator[Sample]:
    """All samples of one list unit (a record, a jsonl file, a tar, or META|TAR).

    Sample uids are ``<key>#<uid>``: ``uid`` tells repeated list lines apart, so the uid (which
    seeds per-sample randomness) does not depend on where or in which format a sample is
    stored. ``root``: ``data.path_root`` for relative paths. Never raises for bad data."""
    where = getattr(line, "origin", "") or "list line"
    if data_type == "raw" or (data_type == "auto" and line.startswith("{")):
        yield from iter_raw_lines([(where, line)], uid, prefix_map, drops, root)
        return
    meta_path: str | None = None
    if "|" in line:
        parts = line.split("|")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            drops.add("bad_list_line", "", f"expected META|TAR, got {line[:80]!r}", origin=where)
            return
        meta_path = None if parts[0].strip() == "-" else map_path(parts[0].strip(), prefix_map, root)
        tar_path = map_path(parts[1].strip(), prefix_map, root)
    else:
        path = map_path(line, prefix_map, root)
        if not path.endswith((".tar", ".tar.gz", ".tgz")):
            try:
                lines = read_lines(path, drops)
            except OSError as err:
                missing = isinstance(err, FileNotFoundError)
                drops.add("unreadable_list", "", _not_found(path) if missing else str(err),
                          origin=where, path=path if missing else None)
                return
            yield from iter_raw_lines([(f"{path}:{i}", t) for i, t in lines], uid, prefix_map, drops, root)
            return
        tar_path = path
    meta = None
    if meta_path is not None:
        meta = load_metadata(meta_path, drops)
        if meta is None:
            return
    yield from _tar_samples(tar_path, meta_path, meta, uid, drops)


def _tar_samples(tar_path: str, meta_path: str | None, meta: dict[str, dict] | None, uid: str,
                 drops: DropCounter) -> Iterator[Sample]:
    """Samples of a shard tar, merged by key with its combine metadata when given."""
    used: set[str] = set()
    for key, group in iter_tar_groups(tar_path, drops):
        rec = _group_fields(key, group, tar_path, drops)
        if rec is None:
            continue
        if meta is not None:
            if key not in meta:
                drops.add("not_in_metadata", key, f"not a key of {meta_path}", origin=tar_path)
                continue
            used.add(key)
            m = meta[key]
            for field_name in ("txt", "extra", "start", "end"):
                if field_name in m:
                    rec[field_name] = m[field_name]
            task = _task_of(m, meta_path)
            if task:
                rec["task"] = task
            for k, v in m.items():  # metadata may also carry history texts
                if _HIST_KEY.match(k) and k.startswith("txt_"):
                    rec["__history__"].setdefault(int(k[4:]), HistoryItem(index=int(k[4:]))).text = str(v)
        s = _finish(rec, f"{key}#{uid}", tar_path, drops)
        if s is not None:
            yield s
    if meta is not None:
        for key in sorted(meta.keys() - used):
            drops.add("not_in_tar", key, f"in {meta_path}, never seen in the tar", origin=tar_path)


def audio_info(ref: AudioRef) -> tuple[int, int]:
    """(frames, sample_rate) from the header only (used when fast-forwarding on resume)."""
    import io

    from osum_echat.audio.io import AudioError, check_audio_path

    if ref.data is None:
        check_audio_path(str(ref.path))
    src = io.BytesIO(ref.data) if ref.data is not None else ref.path
    try:
        info = sf.info(src)
    except Exception as err:  # soundfile: LibsndfileError / RuntimeError
        raise AudioError(f"{ref.label()}: not readable as audio ({str(err).rsplit(': ', 1)[-1]})") from None
    n, sr = int(info.frames), int(info.samplerate)
    if ref.start is not None:
        end = n if ref.end is None else min(n, round(ref.end * sr))
        n = max(0, end - round(ref.start * sr))
    return n, sr
