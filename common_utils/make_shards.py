"""Raw jsonl -> tar shards (resumable with .finished markers, parallel), + shards_list.txt.

    python common_utils/make_shards.py --raw data.list [--raw more.jsonl] --out_dir shards \
        [--num_per_tar 1000] [--nj 4] [--prefix shards] [--path_prefix_map OLD=NEW]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from osum_echat.data.writers import make_shards


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", action="append", required=True, help="raw jsonl file (repeatable)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--num_per_tar", type=int, default=1000)
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--prefix", default="shards")
    p.add_argument("--shuffle_seed", type=int, default=None)
    p.add_argument("--path_prefix_map", action="append", default=[], help="OLD=NEW path prefix")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pm = dict(x.split("=", 1) for x in a.path_prefix_map)
    make_shards(a.raw, a.out_dir, a.num_per_tar, a.prefix, a.nj, pm, a.shuffle_seed)


if __name__ == "__main__":
    main()
