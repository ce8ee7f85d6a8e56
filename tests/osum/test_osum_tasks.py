"""OSUM's eight tasks (and combined tags) on a tiny OSUM-shaped model: prompts through the one
task catalogue, the CLIs (infer_runtime --model osum, bin.decode, infer_with_shards_or_raw.sh),
the OSUM API and the Gradio OSUM mode."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from osum_echat.config import load_config
from osum_echat.data.loader import build_renderer
from osum_echat.data.render import DropSample, load_prompt_files
from osum_echat.data.sample import Sample
from osum_echat.data.tasks import get_spec
from osum_echat.generate.echat import TASKS
from osum_echat.model.batch import SpeechInSegment, TextSegment

REPO = Path(__file__).resolve().parents[2]
TINY_OSUM = REPO / "conf" / "model" / "tiny_osum.yaml"
EIGHT = ("asr", "srwt", "ved", "ser", "ssr", "sgc", "sap", "sttc")


@pytest.fixture(scope="module")
def renderer(tiny_tokenizer):
    cfg = load_config(TINY_OSUM)
    return build_renderer(cfg.data, tiny_tokenizer, cfg.text.think_style, cfg.model.llm.vocab_size,
                          cfg.text.prompt_style, cfg.text.lowercase_labels)


@pytest.mark.parametrize("task", [*EIGHT, "<TRANSCRIBE> <AGE> <GENDER>", "<GENDER>"])
def test_every_task_prompt_is_instruction_then_speech(renderer, task):
    tag = TASKS.get(task, task)
    prompts = load_prompt_files(["conf/prompts/osum.yaml"])[tag]
    spec = get_spec(tag)
    sample = Sample(key="k", task=tag, txt="Hello World<HAPPY>", feats=torch.zeros(50, 80))
    segs = spec.build(sample, renderer, random.Random(0), with_target=False)
    assert len(segs) == 2 and isinstance(segs[0], TextSegment) and isinstance(segs[1], SpeechInSegment)
    assert renderer.tok.decode(segs[0].ids) in prompts  # no system prompt, no chat template
    full = spec.build(sample, renderer, random.Random(0))
    label = full[-1]
    assert len(full) == 3 and label.supervised
    assert label.ids[-1] == renderer.ids.endoftext  # the answer ends with <|endoftext|>
    assert renderer.tok.decode(label.ids[:-1]) == "hello world<happy>"  # lower-cased, tags too


def test_tags_without_spaces_are_canonical():
    from osum_echat.data.tasks import canonical_task

    assert canonical_task("<TRANSCRIBE><GENDER>") == "<TRANSCRIBE> <GENDER>"
    assert canonical_task(" <TRANSCRIBE><AGE>  <GENDER> ") == "<TRANSCRIBE> <AGE> <GENDER>"


def test_plain_layout_refuses_speech_output_and_history(renderer):
    s = Sample(key="k", task="<S2TCHAT> <TEXT2TOKEN>", txt="hi", feats=torch.zeros(50, 80),
               extra={"speech_token": [1, 2, 3]})
    with pytest.raises(DropSample, match="unsupported_task"):
        get_spec(s.task).build(s, renderer, random.Random(0))


def _runtime():
    spec = importlib.util.spec_from_file_location("infer_runtime", REPO / "infer_runtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_tokenizer):
    from osum_echat.audio.io import save_wav
    from osum_echat.model.build import build_model
    from osum_echat.model.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("osum")
    tiny_tokenizer.save_pretrained(str(d / "tok"))
    torch.manual_seed(0)
    save_checkpoint(build_model(load_config(TINY_OSUM).model, apply_trainable=False), d / "model.pt")
    rng = np.random.default_rng(0)
    for i in range(3):
        save_wav(d / f"q{i}.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)
    return d


def _base(d, out):
    return ["--model", "osum", "--checkpoint", str(d / "model.pt"), "--config", str(TINY_OSUM),
            "--tokenizer", str(d / "tok"), "--device", "cpu", "--out", str(out), "--warmup", "0"]


def test_runtime_runs_every_osum_task(assets, tmp_path, capsys):
    run = _runtime().main
    for task in EIGHT:
        assert run(["--task", task, "--wav", str(assets / "q0.wav"), *_base(assets, tmp_path / task)]) == 0
        rep = json.loads((tmp_path / task / "reply.json").read_text(encoding="utf-8"))
        assert rep["speech_codes"] == [] and rep["stop_reason"] in ("text_end", "max_tokens")
        assert ("timestamps" in rep) == (task == "srwt")
    assert run(["--task_tag", "<TRANSCRIBE> <AGE> <GENDER>", "--wav", str(assets / "q0.wav"),
                *_base(assets, tmp_path / "combo")]) == 0
    with pytest.raises(DropSample, match="unsupported_task"):  # OSUM has no speech output
        run(["--task", "tts", "--text", "hi", *_base(assets, tmp_path / "tts")])


def test_sampling_flags_turn_greedy_off():
    rt = _runtime()
    args, _ = rt.parse_args(["--model", "osum", "--task", "ser", "--top_k", "5"])
    assert rt.sampling_overrides(args) == ["generate.understand.top_k=5", "generate.understand.greedy=false"]
    args, _ = rt.parse_args(["--task", "ser", "--top_k", "5", "--greedy"])
    assert "generate.understand.greedy=true" in rt.sampling_overrides(args)


def test_osum_api_is_deterministic_and_stops_at_endoftext(assets, tiny_tokenizer):
    from osum_echat.generate.osum import OSUM

    bot = OSUM.from_pretrained(str(assets / "model.pt"), str(TINY_OSUM), tiny_tokenizer, device="cpu")
    assert not bot.model.training
    a, b = bot.sgc(str(assets / "q0.wav")), bot.sgc(str(assets / "q0.wav"))
    assert a.text_ids == b.text_ids and a.text == b.text  # greedy by default
    reply, records = bot.srwt(str(assets / "q1.wav"))
    assert isinstance(records, list)
    # force the end token: the reply stops at <|endoftext|> and leaves it out of the text
    eot = bot.renderer.ids.endoftext

    def force_end(state, logits):
        out = torch.full_like(logits, -1e9)
        out[eot if state.n_new >= 2 else 5] = 0.0
        return out

    r = bot.run("asr", wav=str(assets / "q0.wav"), processors=[force_end])
    assert r.stop_reason == "text_end" and r.text_ids == [5, 5]


def test_decode_cli_and_shell_script(assets, tmp_path):
    from osum_echat.bin.decode import main as decode_main

    recs = [{"key": f"u{i}", "wav": str(assets / f"q{i}.wav"), "txt": "a<0.0,0.2>", "task": t}
            for i, t in enumerate(("<TRANSCRIBE> <ALIGN>", "<TRANSCRIBE> <GENDER>", "<TRANSCRIBE> <S2TCHAT>"))]
    lst = tmp_path / "data.list"
    lst.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    common = ["--model", "osum", "--config", str(TINY_OSUM), "--checkpoint", str(assets / "model.pt"),
              "--tokenizer", str(assets / "tok"), "--device", "cpu", "--data_list", str(lst)]
    assert decode_main([*common, "--out_dir", str(tmp_path / "dec"), "--batch_size", "2"]) == 0
    keys = [ln.split("\t")[0] for ln in (tmp_path / "dec" / "text").read_text().splitlines()]
    assert keys == ["u0", "u1", "u2"]
    env = dict(os.environ, PYTHON=sys.executable)
    res = subprocess.run(["bash", str(REPO / "infer_with_shards_or_raw.sh"), *common, "--nj", "2",
                          "--out_dir", str(tmp_path / "sh")], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + res.stdout
    assert (tmp_path / "sh" / "text").read_text() == (tmp_path / "dec" / "text").read_text()


def test_gradio_osum_mode(assets, tiny_tokenizer):
    pytest.importorskip("gradio")
    from osum_echat.generate.osum import OSUM
    from osum_echat.serve.gradio_app import OSUM_TASK_CHOICES, build_app, respond

    bots = {"osum": OSUM.from_pretrained(str(assets / "model.pt"), str(TINY_OSUM), tiny_tokenizer, device="cpu")}
    build_app(bots, "OSUM", mode="osum")
    audio = (16000, (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32))
    for label in OSUM_TASK_CHOICES:
        text, think, wav, status = respond(bots, "osum", label, False, audio, "", "说话人是谁？", mode="osum")
        assert wav is None and not status.startswith("error"), status


def test_real_qwen_ids_of_the_osum_layout(qwen_tokenizer):
    """With the real Qwen2 BPE the answer ends with <|endoftext|> = 151643 (where upstream's OSUM
    generation stops) and no ChatML id appears anywhere in the example."""
    cfg = load_config(REPO / "conf" / "model" / "osum_7b.yaml")
    r = build_renderer(cfg.data, qwen_tokenizer, cfg.text.think_style, cfg.model.llm.vocab_size,
                       cfg.text.prompt_style, cfg.text.lowercase_labels)
    assert r.text_end == 151643
    s = Sample(key="k", task="<TRANSCRIBE><GENDER>", txt="你好<FEMALE>", feats=torch.zeros(50, 80))
    segs = get_spec("<TRANSCRIBE> <GENDER>").build(s, r, random.Random(0))
    ids = [i for seg in segs if isinstance(seg, TextSegment) for i in seg.ids]
    assert segs[-1].ids[-1] == 151643 and qwen_tokenizer.decode(segs[-1].ids[:-1]) == "你好<female>"
    assert not {r.ids.im_start, r.ids.im_end} & set(ids)
