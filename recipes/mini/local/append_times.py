"""Append the wall time of each step of the recipe, and the host that ran it, to results.md.

    python recipes/mini/local/append_times.py --times EXP/times.tsv --results EXP/results.md

``times.tsv`` is written by run.sh, one line per step it ran: name, seconds, finish time (ISO) and
a detail (the step count of a training stage; may be empty). A step run again (a rerun of some
stages, with the same or other options) counts with its latest line, in the order the steps first
appeared. The section names the CPU (model and the instruction sets that decide the speed
of the recipe's fp32 steps: AVX2, AVX-512, AMX) and the cores this process may use: the same
recipe took 15 minutes on one 2-core host and 24-27 on another (recipes/mini/README.md, round 14).
A previous time section is replaced; the section goes last (after the harness reports).
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

MARK = "<!-- time -->"
ISA_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"))


def read_times(path: Path) -> list[tuple[str, float, str]]:
    """[(step, seconds, finished)] with the latest line of each step, in first-seen order; a
    line's detail goes into the step's label: ``step (detail)``."""
    latest: dict[str, tuple[str, float, str]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                raise ValueError(f"{path}:{n}: expected 'step<TAB>seconds<TAB>finished<TAB>detail', got {line!r}")
            try:
                seconds = float(parts[1])
            except ValueError:
                raise ValueError(f"{path}:{n}: seconds {parts[1]!r} is not a number") from None
            label = f"{parts[0]} ({parts[3]})" if parts[3] else parts[0]
            latest[parts[0]] = (label, seconds, parts[2])
    return list(latest.values())


def host_line(cpuinfo: str | None = None) -> str:
    """CPU model, its fp32/bf16 instruction sets and the usable cores, from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    isa = [name for flag, name in ISA_FLAGS if flag in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}; {cores} cores usable; {', '.join(isa) if isa else 'no AVX2'}"


def minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


def section(rows: list[tuple[str, float, str]], host: str) -> str:
    out = [MARK, "", "## Time", "", f"Host: {host}.", "", "| step | time | finished |", "|---|---|---|"]
    out += [f"| {name} | {minutes(s)} | {when} |" for name, s, when in rows]
    out.append(f"| total of these steps | {minutes(sum(s for _, s, _ in rows))} | - |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--times", required=True, help="times.tsv written by run.sh")
    p.add_argument("--results", required=True, help="results.md to append to (written by stage 5)")
    a = p.parse_args(argv)
    rows = read_times(Path(a.times))
    res = Path(a.results)
    text = res.read_text(encoding="utf-8") if res.is_file() else ""
    text = text.split(MARK, 1)[0].rstrip()
    res.write_text((text + "\n\n" if text else "") + section(rows, host_line()), encoding="utf-8")
    print(f"time of {len(rows)} steps -> {res}")


if __name__ == "__main__":
    main()
