"""HumDial-EIBench task-3 JSONL -> echat manifest (docs/eval.md).

    python -m osum_echat.bin.humdial_to_echat --src task3_en.jsonl --out echat_humdial.jsonl [--lang en]
"""

from __future__ import annotations

import argparse
import logging
import sys

from osum_echat.eval.humdial import convert
from osum_echat.eval.store import write_jsonl


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--lang", default=None, choices=(None, "zh", "en"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    items, skipped = convert(a.src, a.lang)
    write_jsonl(a.out, items)
    logging.getLogger("humdial").info("%d items -> %s (skipped: %s)", len(items), a.out, dict(skipped) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
