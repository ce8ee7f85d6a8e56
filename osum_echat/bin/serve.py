"""Real-time speech-to-speech server (docs/serving.md).

    python -m osum_echat.bin.serve --config conf/model/osum_echat_3b.yaml --checkpoint language_think_final.pt \
        --tokenizer /models/Qwen2.5-3B-Instruct --token2wav_dir /models/CosyVoice-300M-25Hz --voice prompt.wav \
        --device auto --dtype bf16 [--host 127.0.0.1 --port 8000]

Any other vocoder with the token2wav streaming interface (``sample_rate``,
``stream(code_iter, voice=...)``) plugs in with ``--vocoder FILE.py:FACTORY --vocoder_arg k=v``
(the mini recipe serves its codec so). Extra ``key=value`` arguments are config overrides.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path


def load_factory(spec: str):
    """``path/to/file.py:name`` -> the callable ``name`` defined in that file."""
    path, _, name = spec.rpartition(":")
    if not path or not name or not Path(path).is_file():
        raise SystemExit(f"--vocoder {spec!r}: expected an existing FILE.py:FACTORY")
    mod_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise SystemExit(f"--vocoder: {path} defines no {name!r}")
    return getattr(module, name)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None)
    p.add_argument("--checkpoint", default=None, help="none: random weights (smoke tests only)")
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--token2wav_dir", default=None, help="a CosyVoice-300M-25Hz folder")
    p.add_argument("--voice", action="append", default=[],
                   help="prompt wav of a voice: PATH (the default voice) or NAME=PATH; repeatable")
    p.add_argument("--vocoder", default=None, help="FILE.py:FACTORY building another streaming vocoder")
    p.add_argument("--vocoder_arg", action="append", default=[], help="key=value for the factory")
    p.add_argument("--first_hop_tokens", type=int, default=10, help="token2wav: codes in the first chunk")
    p.add_argument("--hop_tokens", type=int, default=25, help="token2wav: codes per later chunk")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max_sessions", type=int, default=8)
    p.add_argument("--max_batch", type=int, default=8)
    p.add_argument("--max_queue", type=int, default=8)
    p.add_argument("--idle_timeout", type=float, default=120.0)
    p.add_argument("--max_turn_s", type=float, default=30.0)
    p.add_argument("--history_turns", type=int, default=5)
    p.add_argument("--vad", default="silero", choices=["silero", "energy"])
    p.add_argument("--audio_lead_ms", type=int, default=1000, help="reply audio sent ahead of real time")
    p.add_argument("--log_level", default="info")
    return p.parse_known_args(argv)


def build(args, overrides):
    """(EChat, vocoder, voices, stream kwargs) from the parsed arguments."""
    from osum_echat.generate.echat import EChat

    bot = EChat.from_pretrained(args.checkpoint, args.config, args.tokenizer, args.device, args.dtype,
                                None, overrides)
    vocoder, voices, kwargs = None, {}, {}
    if args.token2wav_dir:
        from osum_echat.token2wav import StreamConfig, Token2Wav

        vocoder = Token2Wav.from_pretrained(args.token2wav_dir, device=args.device)
        kwargs["config"] = StreamConfig(first_hop_tokens=args.first_hop_tokens, hop_tokens=args.hop_tokens)
        kwargs["config"].validate()
    elif args.vocoder:
        opts = dict(kv.split("=", 1) for kv in args.vocoder_arg)
        vocoder = load_factory(args.vocoder)(**opts)
    for spec in args.voice:
        name, sep, path = spec.partition("=")
        voices[name if sep else "default"] = path if sep else spec
    return bot, vocoder, voices, kwargs


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from osum_echat.serve.app import build_app
    from osum_echat.serve.scheduler import SchedulerConfig
    from osum_echat.serve.session import ServeConfig

    bot, vocoder, voices, kwargs = build(args, overrides)
    cfg = ServeConfig(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout, max_turn_s=args.max_turn_s,
                      history_turns=args.history_turns, vad=args.vad, audio_lead_ms=args.audio_lead_ms)
    app = build_app(bot, vocoder, voices, cfg, SchedulerConfig(args.max_batch, args.max_queue), kwargs)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws="websockets-sansio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
