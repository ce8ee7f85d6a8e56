"""Every task and entry point runs with the model cast to bf16 (and fp16 where the device has
half-precision kernels): float32 features meet a half-precision encoder inside the model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "conf" / "model" / "tiny.yaml"
TASKS = ("asr", "understand", "s2t_chat", "s2t_think", "tts", "t2t", "s2s", "s2s_think")
TEXT_IN = ("tts", "t2t")


def half_unsupported(dtype: torch.dtype, device: torch.device) -> str | None:
    """None when the ops the model needs run in ``dtype`` on ``device``, else the error."""
    try:
        x = torch.randn(1, 8, 8, device=device, dtype=dtype)
        conv = torch.nn.Conv1d(8, 8, 3, padding=1).to(device=device, dtype=dtype)
        y = torch.nn.functional.gelu(conv(x)).transpose(1, 2)
        y = torch.nn.functional.layer_norm(y @ torch.randn(8, 8, device=device, dtype=dtype), (8,))
        torch.nn.functional.scaled_dot_product_attention(y[None], y[None], y[None])
        torch.nn.Embedding(4, 8).to(device=device, dtype=dtype)(torch.tensor([1], device=device))
    except (RuntimeError, NotImplementedError) as err:
        return f"{dtype} not supported on {device.type} by this torch: {err}"
    return None


DTYPES = [pytest.param("bf16", id="bf16"), pytest.param("fp16", id="fp16")]
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


def _skip_unsupported(dtype: str, device: str = "cpu") -> None:
    from osum_echat.device import parse_dtype

    reason = half_unsupported(parse_dtype(dtype), torch.device(device))
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_tokenizer):
    from osum_echat.audio.io import save_wav
    from osum_echat.config import load_config
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("dtypes")
    tiny_tokenizer.save_pretrained(str(d / "tok"))
    torch.manual_seed(0)
    save_checkpoint(build_model(load_config(TINY).model, apply_trainable=False), d / "model.pt")
    rng = np.random.default_rng(0)
    for name, secs in (("q.wav", 1.0), ("r.wav", 0.6)):
        save_wav(d / name, 0.1 * rng.standard_normal(int(16000 * secs)).astype(np.float32), 16000)
    return d


def _bot(d: Path, tokenizer, dtype: str, device: str = "cpu"):
    from osum_echat.generate.echat import EChat

    return EChat.from_pretrained(str(d / "model.pt"), str(TINY), tokenizer, device, dtype,
                                 overrides=["generate.max_new_tokens=8"])


def _end_text_early(bot):
    """Processor: <|im_end|> as the 3rd text token, so S2S rows reach the speech phase."""
    im_end = bot.decoder.ids.im_end

    def proc(state, logits):
        if state.phase == "text" and len(state.text_ids) == 2:
            out = torch.full_like(logits, float("-inf"))
            out[im_end] = 0.0
            return out
        return logits

    return proc


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_task_through_echat(assets, tiny_tokenizer, dtype, device):
    _skip_unsupported(dtype, device)
    from osum_echat.device import parse_dtype

    bot = _bot(assets, tiny_tokenizer, dtype, device)
    assert bot.model.lm_head_weight.device.type == device
    assert all(p.dtype == parse_dtype(dtype) for p in bot.model.parameters())
    proc = _end_text_early(bot)
    wav = str(assets / "q.wav")
    for task in TASKS:
        kw = {"text": "hello world"} if task in TEXT_IN else {"wav": wav}
        if task == "understand":
            kw["instruction"] = "what is the emotion?"
        reply = bot.run(task, processors=[proc], **kw)
        assert reply.stop_reason in ("text_end", "speech_end", "max_tokens"), task
        assert reply.timings["new_tokens"] > 0, task
        if task in ("tts", "s2s", "s2s_think"):
            # the speech head and embedding ran in half precision too
            assert reply.speech_codes and all(0 <= c <= 4096 for c in reply.speech_codes), task
        else:
            assert reply.speech_codes == [], task
    # batched rows of different lengths (left padding) and a spoken session with history
    samples = [bot.sample("asr", wav), bot.sample("s2t_chat", str(assets / "r.wav"), key="b")]
    assert len(bot.generate(samples)) == 2
    with bot.session() as s:
        s.s2s(wav, processors=[proc])
        assert s.history()[0].feats is not None
        s.s2s(str(assets / "r.wav"), processors=[proc])


@pytest.mark.parametrize("dtype", DTYPES)
def test_half_speech_embeddings_track_fp32(assets, tiny_tokenizer, dtype):
    """The cast happens at the encoder's input: half-precision adapter outputs stay close to
    the fp32 model's (a wrong cast, e.g. of the lengths, or none at all, fails here)."""
    _skip_unsupported(dtype)
    from osum_echat.generate.echat import features_of

    ref = _bot(assets, tiny_tokenizer, "fp32").model
    half = _bot(assets, tiny_tokenizer, dtype).model
    feats = features_of(str(assets / "q.wav"))[None]
    assert feats.dtype == torch.float32
    lens = torch.tensor([feats.shape[1]])
    with torch.no_grad():
        a, la = ref.embed_speech(feats, lens)
        b, lb = half.embed_speech(feats, lens)
    assert b.dtype == half.dtype and torch.equal(la, lb)
    rel = (a - b.float()).norm() / a.norm()
    assert float(rel) < 0.05


def _runtime():
    spec = importlib.util.spec_from_file_location("infer_runtime", REPO / "infer_runtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_infer_runtime_bf16(assets, tmp_path, capsys):
    d = assets
    args = ["--task", "s2s_think", "--wav", str(d / "q.wav"), "--checkpoint", str(d / "model.pt"),
            "--config", str(TINY), "--tokenizer", str(d / "tok"), "--device", "cpu", "--dtype", "bf16",
            "--out", str(tmp_path), "--warmup", "0", "--max_new_tokens", "6"]
    assert _runtime().main(args) == 0
    assert "text:" in capsys.readouterr().out
    rep = json.loads((tmp_path / "reply.json").read_text(encoding="utf-8"))
    assert rep["task"] == "s2s_think" and rep["timings"]["prefill_ms"] > 0


def test_batch_decode_bf16(assets, tmp_path):
    from osum_echat.bin.decode import main as decode_main

    d = assets
    rows = [{"key": "u1", "wav": str(d / "q.wav"), "txt": "hello", "task": "<TRANSCRIBE>"},
            {"key": "u2", "wav": str(d / "r.wav"), "txt": "hi", "task": "<S2TCHAT> <TEXT2TOKEN>"},
            {"key": "u3", "txt": "hello world", "task": "<TEXT2TOKEN>"}]
    lst = tmp_path / "data.list"
    lst.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "o"
    args = ["--config", str(TINY), "--checkpoint", str(d / "model.pt"), "--tokenizer", str(d / "tok"),
            "--data_list", str(lst), "--out_dir", str(out), "--device", "cpu", "--dtype", "bf16",
            "--batch_size", "2", "generate.max_new_tokens=6"]
    assert decode_main(args) == 0
    keys = [ln.split("\t", 1)[0].split(" ", 1)[0] for ln in (out / "text").read_text(encoding="utf-8").splitlines()]
    assert keys == ["u1", "u2", "u3"]


def test_gradio_respond_bf16(tiny_tokenizer):
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_helpers import make_bot

    from osum_echat.serve.gradio_app import respond

    bot = make_bot(tiny_tokenizer, ["generate.max_new_tokens=4"])
    bot.model.to(torch.bfloat16)
    audio = (16000, (0.1 * np.random.default_rng(0).standard_normal(16000) * 32767).astype(np.int16))
    text, think, wav, status = respond({"m": bot}, "m", "S2S (spoken reply)", True, audio, "", "")
    assert isinstance(text, str) and status.startswith("s2s_think:")
