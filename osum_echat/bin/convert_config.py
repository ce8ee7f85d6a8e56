"""Convert an upstream training YAML (OSUM-EChat or OSUM) into our model config.

    python -m osum_echat.bin.convert_config UPSTREAM.yaml [--llm_config config.json] > conf/model/NAME.yaml

Writes YAML (model, text and, for OSUM, data sections) to stdout; what could not be mapped is
listed as comments at the top of the YAML and on stderr. The mapping is documented in
``osum_echat/model/upstream_config.py``.
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("upstream_yaml")
    p.add_argument("--llm_config", default=None, help="the LLM's HF config.json (shape of the LLM)")
    args = p.parse_args(argv)
    from osum_echat.config import from_dict
    from osum_echat.model.upstream_config import convert

    with open(args.upstream_yaml, encoding="utf-8") as f:
        up = yaml.safe_load(f) or {}
    llm_cfg = None
    if args.llm_config:
        with open(args.llm_config, encoding="utf-8") as f:
            llm_cfg = json.load(f)
    try:
        out, notes = convert(up, llm_cfg)
        from osum_echat.config import ExperimentConfig

        from_dict(ExperimentConfig, out)  # the result must be a valid config of ours
    except ValueError as err:
        print(f"convert_config: {args.upstream_yaml}: {err}", file=sys.stderr)
        return 2
    header = [f"# Converted from {args.upstream_yaml} by osum_echat.bin.convert_config."]
    if notes:
        header.append("# Not mapped:")
        header += [f"#   {n}" for n in notes]
        for n in notes:
            print(f"convert_config: not mapped: {n}", file=sys.stderr)
    sys.stdout.write("\n".join(header) + "\n" + yaml.safe_dump(out, sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
