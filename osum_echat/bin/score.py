"""Score decoding output against references.

    python -m osum_echat.bin.score --ref O/ref --hyp O/text --metric cer|wer|tag|exact|srwt \
        [--tag_group AGE] [--json O/score_cer.json]

Prints a one-line summary and writes the full JSON (default: next to the hypothesis file).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from osum_echat.bin.checks import need_file
from osum_echat.eval.score import METRICS, read_kv, score, summary_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True)
    p.add_argument("--hyp", required=True)
    p.add_argument("--metric", choices=METRICS, default="cer")
    p.add_argument("--tag_group", default=None, help="AGE | GENDER | EMOTION | any tag name list key")
    p.add_argument("--json", default=None, help="output JSON (default: <hyp dir>/score_<metric>.json)")
    args = p.parse_args(argv)
    need_file(args.ref, "--ref")
    need_file(args.hyp, "--hyp")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    s = score(read_kv(args.ref), read_kv(args.hyp), args.metric, args.tag_group)
    out = Path(args.json) if args.json else Path(args.hyp).parent / f"score_{args.metric}.json"
    out.write_text(json.dumps(s, ensure_ascii=False, indent=1), encoding="utf-8")
    print(summary_line(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
