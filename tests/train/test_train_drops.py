"""Training writes every dropped record to model_dir/drops.jsonl (the console keeps 3 per reason)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_helpers import make_wav, write_jsonl  # noqa: E402

from osum_echat.bin import train as train_cli  # noqa: E402


def test_training_writes_drops_jsonl(tiny_config, tmp_path):
    wav = make_wav(tmp_path / "a.wav", 0.4, 0)
    good = [{"key": f"g{i}", "wav": wav, "txt": "hello world", "task": "<TRANSCRIBE>"} for i in range(4)]
    lst = Path(write_jsonl(tmp_path / "s2t.jsonl", good + [
        {"key": "gone", "wav": str(tmp_path / "gone.wav"), "txt": "hi", "task": "<TRANSCRIBE>"}]))
    with open(lst, "ab") as f:  # one Latin-1 line
        f.write('{"key": "latin", "txt": "caf\xe9"}\n'.encode("latin-1"))
    md = tmp_path / "exp"
    train_cli.run(["--config", tiny_config, "--model_dir", str(md), "--device", "cpu",
                   "--train_data_s2t", str(lst), "train.max_steps=2", "train.save_interval=100"])
    recs = [json.loads(x) for x in (md / "drops.jsonl").read_text(encoding="utf-8").splitlines()]
    enc = [r for r in recs if r["reason"] == "bad_encoding"]
    assert enc and enc[0]["origin"] == f"{lst}:6" and enc[0]["family"] == "s2t" and enc[0]["step"] == 0
    gone = [r for r in recs if r["key"] == "gone"]
    assert gone and gone[0]["reason"] == "unreadable_audio" and gone[0]["origin"] == f"{lst}:5"
    assert gone[0]["detail"] == f"audio file not found: {tmp_path / 'gone.wav'}"
