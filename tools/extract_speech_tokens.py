#!/usr/bin/env python3
"""Extract 25 Hz S3 speech codes for training data (the reply audio's ``extra.speech_token``).

Inputs (one of):
  --wav_scp D/wav.scp       lines ``utt path``; writes a jsonl ``{"key": utt, "wav": path, "extra": {"speech_token": [...]}}``
  --raw_list in.jsonl       one JSON object per line; the audio path is read from ``--wav_field``
                            (default: ``a_wav_path`` if present, else ``wav``) and the codes go into
                            ``extra.speech_token`` of a copy of the object.
Output: --out out.jsonl (a new list; the input is never modified), plus a JSON summary on stdout.

Audio is loaded with soundfile, mixed to mono and resampled to 16 kHz. Clips longer than 30 s
are split into <= 30 s pieces whose codes are concatenated (counted as ``split``); unreadable
or empty audio is reported and counted, and that line is written without codes only with
``--keep_failed`` (never with a silently empty list).

    python tools/extract_speech_tokens.py --raw_list data/s2s.jsonl --out data/s2s.tok.jsonl \
        --onnx CosyVoice-300M-25Hz/speech_tokenizer_v1.onnx --nj 8
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

# run as a script from a checkout: make the package importable in spawned workers too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

logger = logging.getLogger("extract_speech_tokens")

_TOKENIZER = None


def _init_worker(onnx_path: str, threads: int) -> None:
    global _TOKENIZER
    import torch

    torch.set_num_threads(1)
    from osum_echat.token2wav.speech_tokenizer import SpeechTokenizer

    _TOKENIZER = SpeechTokenizer(onnx_path, threads=threads)


def _process(item: tuple[int, dict, str]) -> tuple[int, dict, str, int]:
    """-> (index, record, status, n_pieces); status is 'ok', 'split' or 'error: ...'."""
    from osum_echat.token2wav.frontend import load_audio
    from osum_echat.token2wav.speech_tokenizer import MAX_SECONDS, SAMPLE_RATE, split_long

    idx, rec, path = item
    try:
        audio = load_audio(path, SAMPLE_RATE).numpy()
        if audio.size == 0:
            return idx, rec, "error: empty audio", 0
        codes = _TOKENIZER.tokenize(audio)
        if not codes:
            return idx, rec, "error: no codes (clip too short)", 0
        n_pieces = len(split_long(audio, SAMPLE_RATE, MAX_SECONDS))
    except Exception as err:  # one bad file must not stop a long run
        return idx, rec, f"error: {type(err).__name__}: {err}", 0
    out = dict(rec)
    extra = dict(out.get("extra") or {})
    extra["speech_token"] = codes
    out["extra"] = extra
    return idx, out, "split" if n_pieces > 1 else "ok", n_pieces


def read_items(args: argparse.Namespace) -> Iterator[tuple[int, dict, str]]:
    if args.wav_scp:
        with open(args.wav_scp, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                parts = line.strip().split(maxsplit=1)
                if len(parts) == 2:
                    yield i, {"key": parts[0], "wav": parts[1]}, parts[1]
                elif line.strip():
                    logger.warning("wav.scp line %d malformed: %r", i + 1, line.strip())
        return
    with open(args.raw_list, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                logger.warning("line %d: bad JSON (%s)", i + 1, err)
                continue
            field = args.wav_field or ("a_wav_path" if "a_wav_path" in rec else "wav")
            if not rec.get(field):
                logger.warning("line %d: no '%s' field", i + 1, field)
                continue
            yield i, rec, str(rec[field])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav_scp")
    src.add_argument("--raw_list")
    parser.add_argument("--out", required=True)
    parser.add_argument("--onnx", required=True, help="speech_tokenizer_v1.onnx of the CosyVoice-300M-25Hz folder")
    parser.add_argument("--wav_field", default=None)
    parser.add_argument("--nj", type=int, default=1, help="worker processes")
    parser.add_argument("--threads", type=int, default=1, help="ONNX threads per worker")
    parser.add_argument("--keep_failed", action="store_true", help="also write failed lines (without codes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not Path(args.onnx).exists():
        parser.error(f"{args.onnx} not found")

    items = list(read_items(args))
    results: list[tuple[int, dict, str, int]] = []
    if args.nj <= 1:
        _init_worker(args.onnx, args.threads)
        results = [_process(it) for it in items]
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(args.nj, initializer=_init_worker, initargs=(args.onnx, args.threads)) as pool:
            results = list(pool.imap_unordered(_process, items, chunksize=4))
    results.sort(key=lambda r: r[0])

    counts: Counter = Counter()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for _, rec, status, _ in results:
            kind = "error" if status.startswith("error") else status
            counts[kind] += 1
            if kind == "error":
                logger.warning("%s: %s", rec.get("key", rec.get("wav", "?")), status)
                if not args.keep_failed:
                    continue
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    summary = {"total": len(items), "ok": counts["ok"], "split_over_30s": counts["split"], "failed": counts["error"], "out": args.out}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main()["failed"] == 0 else 1)
