"""Append-only ``key<TAB>json`` files: the resumable state of an evaluation run.

A line is written only once its item is complete, so a killed run loses at most the item in
flight; a partial last line is dropped on open; a rerun skips keys already present.
"""

from __future__ import annotations

import json
from pathlib import Path


class KeyedJsonl:
    """``key<TAB>json`` lines; ``done`` holds the keys already written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):  # a kill mid-line
                data = data[: data.rfind(b"\n") + 1]
                self.path.write_bytes(data)
            for ln in data.decode("utf-8").splitlines():
                key, _, js = ln.partition("\t")
                self.rows[key] = json.loads(js)

    @property
    def done(self) -> set[str]:
        return set(self.rows)

    def add(self, key: str, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(key + "\t" + json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        self.rows[key] = row


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file; a bad line raises naming file and line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, ln in enumerate(f, 1):
            if not ln.strip():
                continue
            try:
                out.append(json.loads(ln))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON ({err})") from None
    return out


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
