"""Command-line tools check their inputs before loading anything: one line, non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from osum_echat.bin.checks import InputError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not audio\n")
    sf.write(tmp_path / "ok.wav", np.zeros(1600, dtype=np.float32), 16000)
    return tmp_path


@pytest.fixture
def no_model_load(monkeypatch):
    """Loading a model fails the test: the checks must come first."""
    from osum_echat.generate.echat import EChat

    def boom(*a, **k):
        raise AssertionError("model loaded before the inputs were checked")

    monkeypatch.setattr(EChat, "from_pretrained", boom)


def _infer(argv):
    sys.path.insert(0, str(REPO))
    import infer_runtime

    return infer_runtime.main(argv)


def _message(fn, argv) -> str:
    with pytest.raises(InputError) as e:
        fn(argv)
    return str(e.value)


def test_infer_runtime_missing_wav(files, no_model_load):
    msg = _message(_infer, ["--task", "asr", "--wav", "no_such_file.wav", "--checkpoint", "ok.wav"])
    assert msg == f"error: --wav no_such_file.wav: file not found (relative to the working directory {files})"


def test_infer_runtime_text_file_as_wav(files, no_model_load):
    msg = _message(_infer, ["--task", "s2s", "--wav", "notes.txt"])
    assert msg == "error: --wav notes.txt: not an audio file (soundfile: Format not recognised)"


@pytest.mark.parametrize("argv,expected", [
    (["--task", "asr"], "error: --task asr needs --wav (the spoken input)"),
    (["--task", "tts"], "error: --task tts needs --text"),
    (["--task", "asr", "--wav", "ok.wav", "--checkpoint", "none.pt"], "error: --checkpoint none.pt: file not found"),
    (["--task", "tts", "--text", "hi", "--token2wav_dir", "ok.wav"], "error: --token2wav_dir ok.wav: is a file, expected a folder"),
    (["--task", "tts", "--text", "hi", "--voice", "notes.txt"], "error: --voice notes.txt: not an audio file"),
])
def test_infer_runtime_other_inputs(files, no_model_load, argv, expected):
    assert _message(_infer, argv).startswith(expected)


def test_infer_runtime_one_line_on_stderr(files):
    r = subprocess.run([sys.executable, str(REPO / "infer_runtime.py"), "--task", "asr", "--wav", "no_such_file.wav"],
                       capture_output=True, text=True, cwd=files, timeout=120)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"error: --wav no_such_file.wav: file not found (relative to the working directory {files})"]


def test_decode_inputs(files, no_model_load):
    from osum_echat.bin.decode import main

    assert _message(main, ["--data_list", "nope.list", "--out_dir", "o"]).startswith(
        "error: --data_list nope.list: file not found")
    assert _message(main, ["--data_list", "notes.txt", "--out_dir", "o", "--checkpoint", "x.pt"]).startswith(
        "error: --checkpoint x.pt: file not found")
    assert _message(main, ["--data_list", "notes.txt", "--out_dir", "o", "--config", str(files)]) == (
        f"error: --config {files}: is a folder, expected a file")


def test_score_inputs(files):
    from osum_echat.bin.score import main

    assert _message(main, ["--ref", "ref.txt", "--hyp", "notes.txt"]).startswith("error: --ref ref.txt: file not found")
    assert _message(main, ["--ref", "notes.txt", "--hyp", "/no/hyp"]) == "error: --hyp /no/hyp: file not found"


def test_train_and_tools_inputs(files):
    from osum_echat.bin import average_model, convert_deepspeed, inspect_data, train

    assert _message(train.run, ["--config", "notes.txt", "--model_dir", "m", "--train_data_s2t", "no.list"]
                    ).startswith("error: --train_data_s2t no.list: file not found")
    assert _message(train.run, ["--config", "c.yaml", "--model_dir", "m"]).startswith("error: --config c.yaml")
    assert _message(inspect_data.main, ["--list", "no.list"]).startswith("error: --list no.list: file not found")
    assert _message(average_model.main, ["--src_dir", "nodir", "--dst", "x.pt"]).startswith(
        "error: --src_dir nodir: folder not found")
    assert _message(convert_deepspeed.main, ["--ckpt_dir", "notes.txt", "--out", "x.pt"]) == (
        "error: --ckpt_dir notes.txt: is a file, expected a folder")
