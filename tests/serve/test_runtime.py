"""infer_runtime.py end to end (tiny model), TTS/S2S with token2wav on a fake CosyVoice folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]


def _runtime():
    spec = importlib.util.spec_from_file_location("infer_runtime", REPO / "infer_runtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_tokenizer):
    from osum_echat.audio.io import save_wav
    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import save_checkpoint
    from osum_echat.token2wav.fake import make_fake_cosyvoice_dir

    d = tmp_path_factory.mktemp("rt")
    tiny_tokenizer.save_pretrained(str(d / "tok"))
    torch.manual_seed(0)
    save_checkpoint(build_model(load_config(REPO / "conf/model/tiny.yaml").model, apply_trainable=False),
                    d / "model.pt")
    save_wav(d / "q.wav", 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    make_fake_cosyvoice_dir(d / "cosy")
    return d


def _base(d, out):
    return ["--checkpoint", str(d / "model.pt"), "--config", str(REPO / "conf/model/tiny.yaml"),
            "--tokenizer", str(d / "tok"), "--device", "cpu", "--out", str(out), "--warmup", "0",
            "--max_new_tokens", "8"]


@pytest.mark.parametrize("task,inp", [("asr", "wav"), ("understand", "wav"), ("t2t", "text"),
                                      ("s2t_think", "wav")])
def test_text_tasks(assets, tmp_path, task, inp, capsys):
    d = assets
    extra = ["--wav", str(d / "q.wav")] if inp == "wav" else ["--text", "hello world"]
    if task == "understand":
        extra += ["--instruction", "what is the emotion?"]
    assert _runtime().main(["--task", task, *extra, *_base(d, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "text:" in out and "ms/token" in out
    rep = json.loads((tmp_path / "reply.json").read_text(encoding="utf-8"))
    assert rep["speech_codes"] == [] and rep["timings"]["prefill_ms"] > 0


@pytest.mark.parametrize("task", ["tts", "s2s"])
def test_speech_tasks_write_wav(assets, tmp_path, task):
    d = assets
    inp = ["--text", "hello world"] if task == "tts" else ["--wav", str(d / "q.wav")]
    # random weights may never produce <|im_end|> in s2s: then the reply ends cleanly, no codes
    args = ["--task", task, *inp, *_base(d, tmp_path), "--token2wav_dir", str(d / "cosy"), "--greedy"]
    assert _runtime().main(args) == 0
    rep = json.loads((tmp_path / "reply.json").read_text(encoding="utf-8"))
    codes = rep["speech_codes"]
    assert all(0 <= c < 4096 for c in codes)
    if codes:
        wav, sr = sf.read(tmp_path / "reply.wav")
        assert sr == 22050 and len(wav) > 0
    else:
        assert task == "s2s" and rep["stop_reason"] == "max_tokens"


def test_echat_s2s_with_token2wav(assets, tiny_tokenizer):
    from osum_echat.generate.echat import EChat

    d = assets
    bot = EChat.from_pretrained(str(d / "model.pt"), str(REPO / "conf/model/tiny.yaml"), tiny_tokenizer,
                                "cpu", token2wav_dir=str(d / "cosy"),
                                overrides=["generate.max_new_tokens=10", "generate.s2s.greedy=true"])
    im_end = bot.decoder.ids.im_end

    def end_text(state, logits):
        if state.phase == "text" and len(state.text_ids) == 2:
            out = torch.full_like(logits, float("-inf"))
            out[im_end] = 0.0
            return out
        return logits

    r = bot.s2s(str(d / "q.wav"), processors=[end_text])
    assert r.speech_codes and r.wav is not None and r.sample_rate == 22050 and len(r.wav) > 0
