"""Shards -> combine directory (per-tar metadata jsonl; the tars are not rewritten).

    python common_utils/make_combine.py --shard_list shards/shards_list.txt --out_dir relabel \
        [--task "<TRANSCRIBE> <EMOTION>"] [--keys keep.txt]

Writes <tar stem>.list per tar, combines_list.txt, combines_tar_root.txt and data.list.
--keys keeps only the listed keys (one per line): a subset without copying audio.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from osum_echat.data.writers import make_combine


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shard_list", required=True, help="shards_list.txt or a -|TAR list")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--task", default=None, help="force this task tag on every utterance")
    p.add_argument("--keys", default=None, help="file of keys to keep")
    p.add_argument("--path_prefix_map", action="append", default=[], help="OLD=NEW path prefix")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    relabel = None
    if a.keys:
        with open(a.keys, encoding="utf-8") as f:
            keep = {ln.strip() for ln in f if ln.strip()}
        relabel = lambda rec: rec if rec["key"] in keep else None
    pm = dict(x.split("=", 1) for x in a.path_prefix_map)
    print(make_combine(a.shard_list, a.out_dir, a.task, relabel, pm))


if __name__ == "__main__":
    main()
