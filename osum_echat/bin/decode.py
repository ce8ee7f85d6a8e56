"""Batch decoding of a raw / shard data list.

    python -m osum_echat.bin.decode --config C --checkpoint P --data_list L --out_dir O \
        [--model echat|osum] [--data_type raw|shard|auto] [--task T] [--tokenizer DIR] \
        [--device auto] [--dtype bf16] \
        [--nj N --job_id J] [--batch_size B] [--merge] [dotted.overrides=...]

Writes ``O/split/J/*`` for job J; with ``--nj 1`` (default) the result is merged at once into
``O/text`` (``key<TAB>text``), ``O/think``, ``O/codes`` (``key c1 c2 ...``) and ``O/ref``. With
several jobs run them in parallel (``infer_with_shards_or_raw.sh`` does) and then
``--merge --nj N``. Reruns skip keys already decoded. ``--task`` overrides the records' task
(short names asr / s2t_chat / s2t_think / tts / t2t / s2s / s2s_think, OSUM's srwt / ved / ser /
ssr / sgc / sap / sttc, or a task tag). ``--model osum`` decodes with OSUM's release config.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None)
    p.add_argument("--model", choices=("echat", "osum"), default="echat",
                   help="model family: picks the default --config (osum: conf/model/osum_7b.yaml)")
    p.add_argument("--checkpoint", default=None, help="model .pt (omit only for smoke tests: random weights)")
    p.add_argument("--data_list", default=None)
    p.add_argument("--data_type", default="auto", choices=("auto", "raw", "shard"))
    p.add_argument("--task", default=None)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--job_id", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--merge", action="store_true", help="only merge O/split/* of --nj jobs")
    return p.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from osum_echat.generate.batch_decode import decode_job, merge

    log = logging.getLogger("decode")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"unknown arguments {bad} (overrides look like a.b=value)")
    if not args.merge:
        if not args.data_list:
            raise SystemExit("error: --data_list is required")
        from osum_echat.bin.checks import need_file, need_path

        need_file(args.data_list, "--data_list")
        need_file(args.config, "--config")
        need_file(args.checkpoint, "--checkpoint")
        need_path(args.tokenizer, "--tokenizer")
        from osum_echat.generate.echat import MODEL_CONFIGS, EChat, task_tag

        job = args.job_id if args.job_id is not None else 0
        if args.job_id is None and args.nj != 1:
            raise SystemExit("--nj > 1 needs --job_id (or use infer_with_shards_or_raw.sh)")
        config = args.config or str(MODEL_CONFIGS[args.model])
        bot = EChat.from_pretrained(args.checkpoint, config, args.tokenizer, args.device, args.dtype,
                                    overrides=[o.lstrip("-") for o in overrides])
        t0 = time.perf_counter()
        n = decode_job(bot, args.data_list, args.out_dir, task_tag(args.task) if args.task else None,
                       args.data_type, args.nj, job, max(1, args.batch_size))
        log.info("job %d/%d: decoded %d samples in %.1f s", job, args.nj, n, time.perf_counter() - t0)
        if args.nj > 1:
            return 0
    n = merge(args.out_dir, args.nj)
    log.info("merged %d keys into %s/{text,think,codes,ref}", n, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
