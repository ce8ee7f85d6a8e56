"""Data-list YAML -> training list(s) of META|TAR lines (seeded, reproducible).

    python common_utils/expand_data_lists.py conf/data/example_lists.yaml out/train [--seed 777]

YAML: ``name: {path: shards_list.txt | combines_list.txt | raw.jsonl, weight: 1.0,
family: s2t}``. Writes ``<out>.<family>.list`` per family (``<out>.all.list`` for entries
without a family) and prints the paths. Integer weights repeat lines; the fractional part
adds a seeded subset (0.3 keeps 30 %).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from osum_echat.data.writers import expand_data_lists


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("yaml")
    p.add_argument("out_prefix")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--path_prefix_map", action="append", default=[], help="OLD=NEW path prefix")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pm = dict(x.split("=", 1) for x in a.path_prefix_map)
    os.makedirs(os.path.dirname(os.path.abspath(a.out_prefix)), exist_ok=True)
    for fam, lines in expand_data_lists(a.yaml, a.seed, pm).items():
        path = f"{a.out_prefix}.{fam}.list"
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(ln + "\n" for ln in lines)
        print(path)


if __name__ == "__main__":
    main()
