"""tools/extract_speech_tokens.py on a tiny raw list with the fake ONNX tokenizer."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("extract_speech_tokens", ROOT / "tools" / "extract_speech_tokens.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_extract_raw_list_with_long_clip(tmp_path, fake_dir):
    rng = np.random.RandomState(0)
    sf.write(tmp_path / "a.wav", (0.1 * rng.randn(16000 * 2)).astype(np.float32), 16000)
    sf.write(tmp_path / "long.wav", (0.1 * rng.randn(8000 * 31)).astype(np.float32), 8000)  # 31 s at 8 kHz
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    lines = [
        {"key": "u1", "a_wav_path": str(tmp_path / "a.wav"), "txt": "hi", "extra": {"x": 1}},
        {"key": "u2", "a_wav_path": str(tmp_path / "long.wav")},
        {"key": "u3", "a_wav_path": str(tmp_path / "bad.wav")},
    ]
    raw = tmp_path / "in.jsonl"
    raw.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    out = tmp_path / "out.jsonl"
    summary = _tool().main(["--raw_list", str(raw), "--out", str(out), "--onnx", str(fake_dir / "speech_tokenizer_v1.onnx")])
    assert summary == {"total": 3, "ok": 1, "split_over_30s": 1, "failed": 1, "out": str(out)}
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in recs] == ["u1", "u2"]
    assert recs[0]["extra"]["x"] == 1 and recs[0]["txt"] == "hi"
    assert abs(len(recs[0]["extra"]["speech_token"]) - 2 * 25) <= 1
    assert abs(len(recs[1]["extra"]["speech_token"]) - 31 * 25) <= 2  # 30 s + 1 s pieces, concatenated
    assert json.loads(raw.read_text().splitlines()[0]) == lines[0]  # input untouched


def test_extract_wav_scp(tmp_path, fake_dir):
    sf.write(tmp_path / "a.wav", (0.1 * np.random.RandomState(1).randn(16000)).astype(np.float32), 16000)
    (tmp_path / "wav.scp").write_text(f"utt1 {tmp_path / 'a.wav'}\n")
    out = tmp_path / "out.jsonl"
    summary = _tool().main(["--wav_scp", str(tmp_path / "wav.scp"), "--out", str(out), "--onnx", str(fake_dir / "speech_tokenizer_v1.onnx")])
    assert summary["ok"] == 1
    rec = json.loads(out.read_text())
    assert rec["key"] == "utt1" and len(rec["extra"]["speech_token"]) == 25
