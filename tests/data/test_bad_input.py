"""Every drop reason is produced by a crafted bad input and counted; nothing raises."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import io
import json
import tarfile
from pathlib import Path

from data_helpers import data_cfg, make_wav, run_loader, write_jsonl

from osum_echat.data.drops import REASONS


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_every_reason_counted(tiny_tok, tmp_path):
    wav = make_wav(tmp_path / "ok.wav", 0.5)
    wav_bytes = Path(wav).read_bytes()
    tiny = make_wav(tmp_path / "tiny.wav", 200 / 16000)
    short = make_wav(tmp_path / "short.wav", 0.05)
    long = make_wav(tmp_path / "long.wav", 3.0)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really audio")
    ok = {"wav": wav, "task": "<TRANSCRIBE>"}
    s2s = {"wav": wav, "task": "<S2TCHAT> <TEXT2TOKEN>"}
    recs = [
        "{not json",
        {"key": "nofield", "wav": wav},
        {"key": "extra", "txt": "hi", "extra": "{oops", **ok},
        {"key": "noaudio", "txt": "hi", "task": "<TRANSCRIBE>"},
        {"key": "badaudio", "txt": "hi", "wav": str(tmp_path / "bad.wav")},
        {"key": "unknown", "txt": "hi", "task": "<WHAT>", "wav": wav},
        {"key": "empty", "txt": "   ", **ok},
        {"key": "emptytag", "txt": "<开心>", "task": "<S2TCHAT>", "wav": wav},
        {"key": "nothink", "txt": "hi", "task": "<S2TCHAT> <THINKER>", "wav": wav},
        {"key": "noq", "txt": "hi", "task": "<TEXT2TEXT>"},
        {"key": "nocodes", "txt": "hi", "task": "<TEXT2TOKEN>"},
        {"key": "badcodes", "txt": "hi", "task": "<TEXT2TOKEN>", "extra": {"speech_token": [1, 5000]}},
        {"key": "nolearn", "txt": "hi", "task": "<S2TCHAT>", "wav": wav, "extra": {"text_loss": False}},
        {"key": "gap", "txt": "hi", "wav_2": wav, "txt_2": "x", **s2s,
         "extra": {"speech_token": list(range(50))}},
        {"key": "tooshort", "txt": "hi", **ok, "wav": short},
        {"key": "enc", "txt": "hi", **ok, "wav": tiny},
        {"key": "toolong", "txt": "hi", **ok, "wav": long},
        {"key": "llong", "txt": "hello world " * 40, **ok},
        {"key": "codes", "txt": "hi", "task": "<TEXT2TOKEN>", "extra": {"speech_token": list(range(600))}},
        {"key": "ratio", "txt": "hello world how are you", **s2s, "extra": {"speech_token": [1, 2]}},
        {"key": "banned", "txt": "I am ChatGPT", **ok},
        {"key": "seq", "txt": "hi", "task": "<TEXT2TEXT>", "extra": {"question": "what " * 1000}},
        {"key": "good", "txt": "hi", **ok},
    ]
    raw = write_jsonl(tmp_path / "bad.jsonl", recs)
    with open(raw, "ab") as f:  # a line in Latin-1, not UTF-8
        f.write('{"key": "latin", "txt": "caf\xe9"}\n'.encode("latin-1"))
    meta = write_jsonl(tmp_path / "m.list", [{"key": "a", "txt": "hi", "task": "<TRANSCRIBE>"},
                                             {"key": "ghost", "txt": "hi", "task": "<TRANSCRIBE>"}])
    good_tar = _tar(tmp_path / "t1.tar", [("a.txt", b"hi"), ("a.wav", wav_bytes),
                                          ("b.txt", b"hi"), ("b.wav", wav_bytes)])
    ooo = _tar(tmp_path / "t2.tar", [("c.txt", b"hi"), ("d.txt", b"hi"), ("d.wav", wav_bytes),
                                     ("c.wav", wav_bytes)])
    (tmp_path / "junk.tar").write_bytes(b"\0garbage" * 10)
    lines = [raw, "a|b|c", f"{meta}|{good_tar}", f"-|{ooo}", str(tmp_path / "junk.tar"),
             str(tmp_path / "missing.jsonl")]
    lst = write_jsonl(tmp_path / "list.txt", lines)
    cfg = data_cfg(filter__max_frames=200, filter__max_label_tokens=60, filter__max_speech_codes=500,
                   filter__max_seq_len=800, filter__banned_substrings=["ChatGPT"],
                   filter__min_label_tokens=1)
    batches, ld = run_loader(cfg, {"all": lst}, tiny_tok)
    counts = ld.drops.as_dict()
    _, ld2 = run_loader(cfg, {"s2s": write_jsonl(tmp_path / "r.jsonl", [recs[-1]])}, tiny_tok)
    counts["wrong_family"] = ld2.drops.as_dict().get("wrong_family", 0)
    cfg.filter.min_label_tokens = 50
    _, ld3 = run_loader(cfg, {"all": write_jsonl(tmp_path / "s.jsonl", [recs[-1]])}, tiny_tok)
    counts["label_too_short"] = ld3.drops.as_dict().get("label_too_short", 0)
    tts = {"key": "tts", "txt": "hi", "task": "<TEXT2TOKEN>", "extra": {"speech_token": [1, 2, 3]}}
    _, ld4 = run_loader(cfg, {"all": write_jsonl(tmp_path / "p.jsonl", [tts])}, tiny_tok, prompt_style="plain")
    counts["unsupported_task"] = ld4.drops.as_dict().get("unsupported_task", 0)  # OSUM: no speech output
    missing = [r for r in REASONS if not counts.get(r)]
    assert not missing, (missing, counts)
    keys = [k for b in batches for k in b.keys]
    assert sorted(keys) == ["a", "d", "good"]  # c lost its audio (out of order) -> missing_field
    assert json.dumps(counts)  # plain data, mergeable
