"""A combine relabel of the ASR shards: the same tars, new metadata that turns every
``<TRANSCRIBE>`` utterance into ``<TRANSCRIBE> <GENDER>`` (transcript + gender tag), without
copying audio (exercises ``make_combine`` and the META|TAR source).

    python recipes/mini/local/relabel_gender.py --shard_list shards/shards_list.txt --out_dir DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from osum_echat.data.writers import make_combine  # noqa: E402

GENDER_TAG = {"male": "<MALE>", "female": "<FEMALE>"}


def relabel(rec: dict) -> dict | None:
    gender = (rec.get("extra") or {}).get("gender")
    if rec.get("task") != "<TRANSCRIBE>" or gender not in GENDER_TAG:
        return None
    rec["task"] = "<TRANSCRIBE> <GENDER>"
    rec["txt"] = rec["txt"] + GENDER_TAG[gender]
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shard_list", required=True)
    p.add_argument("--out_dir", required=True)
    a = p.parse_args()
    print(make_combine(a.shard_list, a.out_dir, None, relabel))


if __name__ == "__main__":
    main()
