"""Append the evaluation harness reports (understanding, echat, ...) to results.md.

    python recipes/mini/local/append_harness.py --results EXP/results.md DIR [DIR ...]

Each DIR is an ``osum_echat.bin.evaluate`` output folder; its report.md is appended under a
heading, with plot links made relative to results.md. A previous harness section is replaced.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

MARK = "<!-- evaluation harness -->"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True)
    p.add_argument("dirs", nargs="+")
    a = p.parse_args()
    res = Path(a.results)
    text = res.read_text(encoding="utf-8") if res.is_file() else ""
    text = text.split(MARK, 1)[0].rstrip() + "\n\n" + MARK + "\n\n## Evaluation harness (python -m osum_echat.bin.evaluate)\n"
    for d in map(Path, a.dirs):
        rep = d / "report.md"
        if not rep.is_file():
            text += f"\n### {d.name}\n\n(no report: {rep} missing)\n"
            continue
        rel = os.path.relpath(d, res.parent)
        body = rep.read_text(encoding="utf-8").replace("\n# ", "\n#### ")
        body = re.sub(r"^# (.*)$", r"### \1 (" + d.name + ")", body, count=1, flags=re.M)
        body = re.sub(r"\]\(([^)/]+\.png)\)", lambda m: f"]({rel}/{m.group(1)})", body)
        body = body.replace("\n## ", "\n#### ")
        text += "\n" + body
    res.write_text(text, encoding="utf-8")
    print(f"harness reports of {len(a.dirs)} runs -> {res}")


if __name__ == "__main__":
    main()
