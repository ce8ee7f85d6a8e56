"""Input checks for the command-line tools.

They run right after argument parsing, before any model, tokenizer or token2wav is loaded, so a
wrong path costs a second instead of a model load, and ends in one line that says which option,
which path and why, with a non-zero exit status::

    error: --wav no_such_file.wav: file not found (relative to the working directory /home/me)
    error: --wav notes.txt: not an audio file (soundfile: Format not recognised)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn


class InputError(SystemExit):
    """A bad command-line input; uncaught, Python prints the one-line message to stderr and
    exits with status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(option: str, path: object, why: str) -> NoReturn:
    raise InputError(f"error: {option} {path}: {why}")


def _missing(path: Path) -> str:
    return "file not found" + ("" if path.is_absolute() else f" (relative to the working directory {Path.cwd()})")


def need_path(path: str | os.PathLike | None, option: str, kind: str = "any") -> None:
    """``path`` (when given) exists; ``kind``: 'file', 'dir' or 'any'; files must be readable."""
    if path is None or str(path) == "":
        return
    p = Path(path)
    if not p.exists():
        fail(option, path, _missing(p).replace("file", "folder", 1) if kind == "dir" else _missing(p))
    if kind == "file" and p.is_dir():
        fail(option, path, "is a folder, expected a file")
    if kind == "dir" and not p.is_dir():
        fail(option, path, "is a file, expected a folder")
    if p.is_file() and not os.access(p, os.R_OK):
        fail(option, path, "not readable (permission denied)")


def need_file(path: str | os.PathLike | None, option: str) -> None:
    need_path(path, option, "file")


def need_dir(path: str | os.PathLike | None, option: str) -> None:
    need_path(path, option, "dir")


def need_audio(path: str | os.PathLike | None, option: str) -> None:
    """An existing file that soundfile can open as audio (header only, nothing decoded)."""
    if path is None or str(path) == "":
        return
    need_file(path, option)
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile: LibsndfileError / RuntimeError
        why = str(err).strip().rsplit(": ", 1)[-1].rstrip(".")
        fail(option, path, f"not an audio file (soundfile: {why})")
    if info.frames == 0:
        fail(option, path, "audio file with no samples")


def need_model_inputs(args) -> None:
    """The files every model-loading CLI takes (``--checkpoint`` one or a list, ``--config``,
    ``--tokenizer``, ``--token2wav_dir``, ``--voice``: a wav, or a ``.pt`` of cached features)."""
    checkpoints = args.checkpoint if isinstance(args.checkpoint, (list, tuple)) else [args.checkpoint]
    for ck in checkpoints:
        need_file(ck, "--checkpoint")
    need_file(args.config, "--config")
    need_path(args.tokenizer, "--tokenizer")
    need_dir(args.token2wav_dir, "--token2wav_dir")
    need_file(args.voice, "--voice")
    if args.voice and not str(args.voice).endswith(".pt"):
        need_audio(args.voice, "--voice")
