"""Check a real CosyVoice-300M-25Hz folder: load strictly, synthesize codes, write a wav.

    python -m osum_echat.bin.check_token2wav --dir CosyVoice-300M-25Hz --codes codes.txt \
        [--voice prompt.wav] [--device auto] [--dtype fp32] [--stream] --out x.wav

``--codes`` is a file of whitespace/comma separated ints or a literal like ``"12 873 4001"``;
without it a fixed pseudo-random sequence of 100 codes is used (the audio is then noise-like
speech, but loading, lengths and timing are checked). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from osum_echat.token2wav.model import Token2Wav


def parse_codes(spec: str | None) -> list[int]:
    if not spec:
        return [int(v) for v in np.random.RandomState(0).randint(0, 4096, 100)]
    text = Path(spec).read_text() if Path(spec).exists() else spec
    return [int(v) for v in re.split(r"[\s,\[\]]+", text) if v]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True)
    p.add_argument("--codes", default=None)
    p.add_argument("--voice", default=None, help="prompt wav (> 22.05 kHz preferred) or a saved Voice .pt")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from osum_echat.bin.checks import need_audio, need_dir, need_file

    need_dir(args.dir, "--dir")
    need_file(args.voice, "--voice")
    if args.voice and not str(args.voice).endswith(".pt"):
        need_audio(args.voice, "--voice")
    logging.basicConfig(level=logging.INFO)
    import soundfile as sf

    t0 = time.perf_counter()
    t2w = Token2Wav.from_pretrained(args.dir, device=args.device, dtype=args.dtype, seed=args.seed)
    load_s = time.perf_counter() - t0
    codes = parse_codes(args.codes)
    t0 = time.perf_counter()
    if args.stream:
        wav = np.concatenate(list(t2w.stream(iter(codes), voice=args.voice)) or [np.zeros(0, np.float32)])
    else:
        wav, _ = t2w.synthesize(codes, voice=args.voice)
    synth_s = time.perf_counter() - t0
    sf.write(args.out, wav, t2w.sample_rate, subtype="PCM_16")
    summary = {
        "codes": len(codes),
        "samples": int(len(wav)),
        "seconds": len(wav) / t2w.sample_rate,
        "expected_samples": t2w.cfg.mel_frames(len(codes)) * 256,
        "load_s": round(load_s, 3),
        "synth_s": round(synth_s, 3),
        "rtf": round(synth_s / max(len(wav) / t2w.sample_rate, 1e-9), 4),
        "out": args.out,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
