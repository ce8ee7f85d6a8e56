"""Evaluation harness (docs/eval.md).

    python -m osum_echat.bin.evaluate --suite understanding|echat|voicebench --data PATH \
        --config C --checkpoint P --out DIR [--tokenizer DIR] [--judge rule|hf:FOLDER|openai:URL] \
        [--think on|off] [--limit N] [--nj K [--job_id J] [--devices d0,d1]] [--batch_size B] \
        [--vocoder token2wav:DIR|FILE.py:FACTORY[:ARG]] [--reply_asr self|whisper:FILE.pt|FILE.py:FACTORY[:ARG]] \
        [--device auto] [--dtype fp32] [dotted.overrides=...]

Writes DIR/items.jsonl, DIR/results.json, DIR/report.md and PNG plots. A rerun skips finished
items. ``--nj K`` runs K decoding processes (job J on device ``devices[J % len]``) and then
scores; ``--job_id J`` runs only that job's generation (merge later with ``--stage finish``).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

from osum_echat.eval.run import SUITES, RunConfig, finish, generate_job, prepare


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", required=True, choices=sorted(SUITES))
    p.add_argument("--data", required=True, help="data list / EChat manifest / VoiceBench folder")
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None)
    p.add_argument("--checkpoint", default=None, help="model .pt (omit only for smoke tests: random weights)")
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--judge", default="rule")
    p.add_argument("--think", default="off", choices=("on", "off"))
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--job_id", type=int, default=None)
    p.add_argument("--devices", default=None, help="comma list; job J uses devices[J %% len]")
    p.add_argument("--stage", default="all", choices=("all", "generate", "finish"))
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--vocoder", default=None)
    p.add_argument("--reply_asr", default="self", help="self | whisper:FILE.pt | FILE.py:FACTORY[:ARG] (docs/eval.md)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    return p.parse_known_args(argv)


def _bot(args, overrides, device):
    from osum_echat.generate.echat import EChat

    return EChat.from_pretrained(args.checkpoint, args.config, args.tokenizer, device, args.dtype,
                                 overrides=overrides)


def _spawn_jobs(args, argv) -> None:
    devices = args.devices.split(",") if args.devices else [args.device]
    procs = []
    for j in range(args.nj):
        cmd = [sys.executable, "-m", "osum_echat.bin.evaluate", *argv, "--job_id", str(j), "--stage", "generate",
               "--device", devices[j % len(devices)]]
        procs.append(subprocess.Popen(cmd))
    bad = [j for j, p in enumerate(procs) if p.wait() != 0]
    if bad:
        raise SystemExit(f"generation jobs {bad} failed; rerun to resume")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, overrides = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"unknown arguments {bad} (overrides look like a.b=value)")
    overrides = [o.lstrip("-") for o in overrides]
    cfg = RunConfig(suite=args.suite, data=args.data, out=args.out, think=args.think == "on", limit=args.limit,
                    nj=args.nj, judge=args.judge, reply_asr=args.reply_asr, vocoder=args.vocoder,
                    batch_size=max(1, args.batch_size), device=args.device)
    bot = None
    if args.stage in ("all", "generate"):
        bot = _bot(args, overrides, args.device) if args.job_id is not None or args.nj == 1 else None
        cfg.path_prefix_map = dict((bot.cfg if bot else _cfg(args, overrides)).data.path_prefix_map)
        prepare(cfg)
        if args.job_id is not None:
            generate_job(cfg, bot, args.job_id)
            if args.stage == "generate":
                return 0
        elif args.nj > 1:
            _spawn_jobs(args, argv)
        else:
            generate_job(cfg, bot, 0)
    if args.stage == "generate":
        return 0
    from osum_echat.eval.judges import load_judge

    from osum_echat.device import resolve_device

    judge = load_judge(args.judge, str(resolve_device(args.device)))
    res = finish(cfg, judge)
    logging.getLogger("evaluate").info("%s: %d items -> %s/report.md", args.suite, res["n"], args.out)
    return 0


def _cfg(args, overrides):
    from osum_echat.config import load_config
    from osum_echat.generate.echat import DEFAULT_CONFIG

    return load_config(args.config or DEFAULT_CONFIG, overrides)


if __name__ == "__main__":
    sys.exit(main())
