"""What a user sees for bad data: one test per message (text and record fields asserted)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest
from data_helpers import data_cfg, make_wav, run_loader, write_jsonl

from osum_echat.data.drops import DropCounter, format_drop
from osum_echat.data.sources import iter_unit, read_list

OK = {"txt": "hello world", "task": "<TRANSCRIBE>"}


def _tar(path: Path, members: list[tuple[str, bytes]]) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def _latin1_line(key: str) -> bytes:
    return json.dumps({"key": key, "txt": "café"}, ensure_ascii=False).encode("latin-1") + b"\n"


def _records(ld) -> list[dict]:
    return [json.loads(x) for x in Path(ld.drop_file.path).read_text(encoding="utf-8").splitlines()]


def test_list_not_utf8_is_counted_at_startup(tmp_path, tiny_tok):
    wav = make_wav(tmp_path / "a.wav")
    lst = tmp_path / "list.txt"
    lst.write_bytes(json.dumps({"key": "a", "wav": wav, **OK}).encode() + b"\n" + _latin1_line("b")
                    + json.dumps({"key": "c", "wav": wav, **OK}).encode() + b"\n")
    drops = DropCounter(collect=True)
    units = read_list(str(lst), {}, drops)
    assert len(units) == 2 and units[1].origin == f"{lst}:3"
    (rec,) = drops.take_records()
    assert rec["reason"] == "bad_encoding" and rec["origin"] == f"{lst}:2"
    assert "not UTF-8" in rec["detail"]
    batches, ld = run_loader(data_cfg(), {"all": str(lst)}, tiny_tok)
    assert sorted(k for b in batches for k in b.keys) == ["a", "c"]
    assert ld.drops.as_dict() == {"bad_encoding": 1}


@pytest.mark.parametrize("workers", [0, 2])
def test_jsonl_and_metadata_not_utf8_inside_workers(tmp_path, tiny_tok, workers):
    wav = make_wav(tmp_path / "a.wav")
    raw = tmp_path / "part.jsonl"
    raw.write_bytes(json.dumps({"key": "r1", "wav": wav, **OK}).encode() + b"\n" + _latin1_line("r2"))
    meta = tmp_path / "meta.jsonl"
    meta.write_bytes(json.dumps({"key": "t1", **OK}).encode() + b"\n" + _latin1_line("t2"))
    wav_bytes = Path(wav).read_bytes()
    tar = _tar(tmp_path / "t.tar", [("t1.wav", wav_bytes), ("t2.wav", wav_bytes)])
    lst = write_jsonl(tmp_path / "list.txt", [str(raw), f"{meta}|{tar}"])
    cfg = data_cfg(num_workers=workers)
    from osum_echat.data.loader import build_loader

    ld = build_loader(cfg, {"all": lst}, tiny_tok, train=False)
    ld.write_drops_to(tmp_path / "drops.jsonl")
    keys = sorted(k for b in ld for k in b.keys)
    assert keys == ["r1", "t1"]
    recs = _records(ld)
    enc = sorted(r["origin"] for r in recs if r["reason"] == "bad_encoding")
    assert enc == sorted([f"{meta}:2", f"{raw}:2"])
    assert {r["key"] for r in recs if r["reason"] == "not_in_metadata"} == {"t2"}


def test_inline_record_names_list_file_and_line(tmp_path):
    lst = write_jsonl(tmp_path / "list.txt", [{"key": "a", **OK, "wav": "x.wav"}, {"key": "b"}])
    drops = DropCounter(collect=True)
    for i, u in enumerate(read_list(lst, {}, drops)):
        list(iter_unit(u, str(i), {}, drops))
    (rec,) = drops.take_records()
    assert rec == {"key": "b", "origin": f"{lst}:2", "reason": "missing_field", "detail": "no txt"}


def test_tar_audio_error_names_tar_and_member(tmp_path, tiny_tok):
    tar = _tar(tmp_path / "s.tar", [("k1.txt", b"hello"), ("k1.wav", b"RIFF garbage, not audio")])
    _, ld = run_loader(data_cfg(), {"all": write_jsonl(tmp_path / "l.txt", [tar])}, tiny_tok)
    ld.write_drops_to(tmp_path / "d.jsonl")
    (rec,) = _records(ld)
    assert rec["reason"] == "unreadable_audio" and rec["key"] == "k1" and rec["origin"] == tar
    assert rec["detail"].startswith(f"member k1.wav of {tar}: not readable as audio")
    assert "BytesIO" not in rec["detail"]


def test_missing_audio_file_says_not_found(tmp_path, tiny_tok, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lst = write_jsonl(tmp_path / "l.txt", [{"key": "m", **OK, "wav": "sub/none.wav"}])
    _, ld = run_loader(data_cfg(), {"all": lst}, tiny_tok)
    ld.write_drops_to(tmp_path / "d.jsonl")
    (rec,) = _records(ld)
    assert rec["detail"] == f"audio file not found: sub/none.wav (relative to the working directory {tmp_path})"
    assert rec["path"] == "sub/none.wav" and "System error" not in rec["detail"]


def test_reason_printed_once(caplog):
    from osum_echat.data.render import DropSample

    d = DropSample("empty_label", "empty answer")
    rec = {"key": "k", "origin": "a.jsonl:3", "reason": d.reason, "detail": d.detail}
    assert format_drop(rec) == "dropped k (a.jsonl:3): empty_label: empty answer"
    with caplog.at_level(logging.WARNING, logger="osum_echat.data.drops"):
        DropCounter().add(d.reason, "k", d.detail, origin="a.jsonl:3")
    assert caplog.messages == ["dropped k (a.jsonl:3): empty_label: empty answer"]


def test_every_drop_in_file_console_short(tmp_path, tiny_tok, caplog):
    wav = make_wav(tmp_path / "a.wav")
    recs = [{"key": f"e{i}", "txt": "  ", "task": "<TRANSCRIBE>", "wav": wav} for i in range(7)]
    lst = write_jsonl(tmp_path / "l.txt", recs)
    from osum_echat.data.loader import build_loader

    with caplog.at_level(logging.WARNING, logger="osum_echat.data.drops"):
        ld = build_loader(data_cfg(), {"all": lst}, tiny_tok, train=False)
        ld.write_drops_to(tmp_path / "model" / "drops.jsonl")
        list(ld)
    file_recs = _records(ld)
    assert [r["key"] for r in file_recs] == [f"e{i}" for i in range(7)]
    assert all(r["reason"] == "empty_label" and r["origin"] == f"{lst}:{i + 1}" and r["family"] == "all"
               for i, r in enumerate(file_recs))
    named = [m for m in caplog.messages if m.startswith("dropped ")]
    assert len(named) == 3
    assert "further 'empty_label' drops are only counted (and listed in the drops file)" in caplog.messages


def test_truncated_tar_names_lost_key_and_offset(tmp_path, tiny_tok):
    wav_bytes = Path(make_wav(tmp_path / "a.wav")).read_bytes()
    tar = _tar(tmp_path / "t.tar", [("a.txt", b"hello"), ("a.wav", wav_bytes),
                                    ("b.txt", b"hello"), ("b.wav", wav_bytes)])
    data = Path(tar).read_bytes()
    off = data.index(b"b.wav")  # header of b.wav
    Path(tar).write_bytes(data[: off + 512 + 100])
    drops = DropCounter(collect=True)
    got = [s.key for s in iter_unit(tar, "0", {}, drops)]
    assert got == ["a"]
    (rec,) = drops.take_records()
    assert rec["reason"] == "unreadable_tar" and rec["key"] == "b" and rec["origin"] == tar
    assert rec["detail"].startswith(f"truncated member (100 of {len(wav_bytes)} bytes) 'b.wav' at byte offset {off}")


def test_one_total_per_family(tmp_path, tiny_tok, caplog):
    wav = make_wav(tmp_path / "a.wav")
    s2t = write_jsonl(tmp_path / "s2t.list", [{"key": f"s{i}", "txt": " ", "task": "<TRANSCRIBE>", "wav": wav}
                                              for i in range(3)] + [{"key": "ok", "wav": wav, **OK}])
    t2t = write_jsonl(tmp_path / "t2t.list", [{"key": "q", "txt": "hi", "task": "<TEXT2TEXT>"}])
    cfg = data_cfg(drop_log_interval=1)
    with caplog.at_level(logging.INFO):
        _, ld = run_loader(cfg, {"s2t": s2t, "t2t": t2t}, tiny_tok, train=False)
    fam = {f: c.as_dict() for f, c in ld.family_drops.items()}
    assert fam == {"s2t": {"empty_label": 3}, "t2t": {"missing_question": 1}}
    assert ld.drops.as_dict() == {"empty_label": 3, "missing_question": 1}
    totals = [m for m in caplog.messages if m.startswith("drops (")]
    assert totals and all(m.startswith("drops (step") or m.startswith("drops (end of stream)") for m in totals)
    assert totals[-1] == ("drops (end of stream): total 4 {'empty_label': 3, 'missing_question': 1}; "
                          "by family: s2t 3 {'empty_label': 3}; t2t 1 {'missing_question': 1}")
    assert ld.state_dict()["family_drops"] == fam


def test_inspect_data_warns_once_and_writes_drops(tmp_path, capsys, caplog):
    from osum_echat.bin.inspect_data import main

    wav = make_wav(tmp_path / "a.wav")
    lst = write_jsonl(tmp_path / "l.txt", [{"key": "bad", "txt": " ", "task": "<TRANSCRIBE>", "wav": wav},
                                           {"key": "ok", "wav": wav, **OK}])
    with caplog.at_level(logging.WARNING):
        main(["--list", lst, "--drops_out", str(tmp_path / "drops.jsonl")])
    assert sum("dropped bad" in m for m in caplog.messages) == 1
    (rec,) = [json.loads(x) for x in (tmp_path / "drops.jsonl").read_text().splitlines()]
    assert rec["key"] == "bad" and rec["reason"] == "empty_label" and rec["origin"] == f"{lst}:1"
    assert f"(every drop in {tmp_path / 'drops.jsonl'})" in capsys.readouterr().out


def test_path_root_hint_and_setting(tmp_path, capsys, monkeypatch):
    from osum_echat.bin.inspect_data import main

    data = tmp_path / "corpus"
    data.mkdir()
    make_wav(data / "a.wav")
    make_wav(data / "b.wav")
    lst = write_jsonl(data / "l.txt", [{"key": k, "wav": f"{k}.wav", **OK} for k in "ab"])
    monkeypatch.chdir(tmp_path)
    main(["--list", lst])
    out = capsys.readouterr().out
    assert "kept 0 examples" in out
    assert (f"hint: 2/2 paths not found relative to CWD ({tmp_path}); they exist relative to the "
            f"list's folder — set data.path_root={data} (or --path_root {data})") in out
    main(["--list", lst, "--path_root", str(data)])
    out = capsys.readouterr().out
    assert "kept 2 examples" in out and "hint:" not in out
