"""Training / fine-tuning a tiny OSUM-shaped model with our trainer (ASR + X mixture, LoRA on),
the stage config on the meta device, and LoRA merging for export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from osum_echat.config import load_config
from osum_echat.model.batch import Example, SpeechInSegment, TextSegment, collate
from osum_echat.model.build import build_model

REPO = Path(__file__).resolve().parents[2]
CORPUS = ["hello world, how are you today?", "今天天气真好，我们去公园吧。", "<HAPPY><ADULT><MALE>",
          "i am fine thanks", "<开始回答>", "a<0.0,0.2>b<0.2,0.4>"]


def test_stage_config_builds_on_meta():
    cfg = load_config(REPO / "conf" / "stage_osum.yaml", ["model.llm.init=config"])
    assert cfg.text.prompt_style == "plain" and cfg.data.prompt_files == ["conf/prompts/osum.yaml"]
    with torch.device("meta"):
        model = build_model(cfg.model)
    parts = {n.split(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad}
    assert parts == {"encoder", "down_sample_2", "speech_transformer", "speech_llama_proj", "ln_speech",
                     "llama_model", "speech_token_emded"}
    assert all(".lora_" in n for n, p in model.named_parameters() if p.requires_grad and n.startswith("llama"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from osum_echat.audio.io import save_wav
    from osum_echat.text.build_tokenizer import train_bpe_tokenizer

    d = tmp_path_factory.mktemp("osum_train")
    train_bpe_tokenizer(CORPUS * 3, vocab_size=400, out_dir=d / "tok")
    rng = np.random.default_rng(0)
    tasks = [("<TRANSCRIBE>", "Hello World"), ("<TRANSCRIBE> <EMOTION>", "i am fine<HAPPY>"),
             ("<TRANSCRIBE> <GENDER>", "今天天气真好<MALE>"), ("<TRANSCRIBE> <ALIGN>", "a<0.0,0.2>b<0.2,0.4>"),
             ("<TRANSCRIBE> <S2TCHAT>", "hello<开始回答>i am fine")]
    recs = []
    for i in range(8):
        task, txt = tasks[i % len(tasks)]
        save_wav(d / f"{i}.wav", (0.1 * rng.standard_normal(5000 + 500 * i)).astype(np.float32), 16000)
        recs.append({"key": f"u{i}", "wav": str(d / f"{i}.wav"), "txt": txt, "task": task})
    (d / "s2t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    (d / "cfg.yaml").write_text(f"""base: [{REPO / 'conf/stage_osum.yaml'}, {REPO / 'conf/model/tiny_osum.yaml'}]
text: {{tokenizer: {d / 'tok'}}}
model: {{llm: {{init: config, vocab_size: 512}}}}
data:
  prompt_files: [{REPO / 'conf/prompts/osum.yaml'}]
  augment: {{spec_aug: false, spec_sub: false}}
  batch: {{batch_type: static, batch_size: 2, shuffle_size: 4, sort_size: 2}}
  num_workers: 0
train: {{dtype: fp32, lr: 1.0e-2, warmup_steps: 1, accum_grad: 1, save_interval: 2, log_interval: 1}}
""", encoding="utf-8")
    return d


def test_one_step_trains_encoder_adapter_and_lora_only(setup, tmp_path):
    from osum_echat.bin import train as train_cli

    d = setup
    md = tmp_path / "exp"
    trainer = train_cli.run(["--config", str(d / "cfg.yaml"), "--model_dir", str(md), "--device", "cpu",
                             "--train_data_s2t", str(d / "s2t.jsonl"), "train.max_steps=2"])
    model = trainer.engine.model
    losses = [json.loads(ln)["loss"] for ln in (md / "metrics.jsonl").read_text().splitlines() if '"loss"' in ln]
    assert len(losses) == 2 and all(np.isfinite(losses))
    sd = torch.load(md / "step_2.pt", weights_only=True)
    assert any(".lora_B." in k for k in sd) and "speech_head.weight" not in sd
    assert any(sd[k].abs().sum() > 0 for k in sd if ".lora_B." in k)  # LoRA B left its zero init
    groups = {g["part"] for g in trainer.engine.optimizer.param_groups}
    assert groups == {"encoder", "adapter", "lora", "speech"}
    assert not model.llama_model.base_model.model.lm_head.weight.requires_grad


def test_merge_lora_tool_gives_the_same_outputs(setup, tmp_path):
    from osum_echat.bin.merge_lora import main as merge_main
    from osum_echat.model.checkpoint import load_checkpoint, save_checkpoint

    cfg = load_config(setup / "cfg.yaml")
    torch.manual_seed(0)
    lora_model = build_model(cfg.model).eval()
    with torch.no_grad():
        for n, p in lora_model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    save_checkpoint(lora_model, tmp_path / "lora.pt")
    assert merge_main(["--config", str(setup / "cfg.yaml"), "--checkpoint", str(tmp_path / "lora.pt"),
                       "--out", str(tmp_path / "merged.pt"), "--hf_dir", str(tmp_path / "hf")]) == 0
    merged_cfg = load_config(setup / "cfg.yaml", ["model.lora.enable=false", "model.trainable=[encoder,adapter]"])
    merged = build_model(merged_cfg.model).eval()
    load_checkpoint(merged, tmp_path / "merged.pt")
    assert not any(".lora_" in k or "base_layer" in k for k in merged.state_dict())
    g = torch.Generator().manual_seed(3)
    batch = collate([Example([TextSegment([1, 2]), SpeechInSegment(torch.randn(90, 80, generator=g)),
                              TextSegment([5, 6, 7], supervised=True)], key="k")], 512)
    with torch.no_grad():
        a, b = lora_model(batch)["loss"], merged(batch)["loss"]
    assert torch.allclose(a, b, atol=1e-4)
    from osum_echat.model.export import load_hf_export

    hf, hf_cfg = load_hf_export(tmp_path / "hf")
    assert not hf_cfg.lora.enable and not hf_cfg.speech_head
    with torch.no_grad():
        assert torch.allclose(hf.eval()(batch)["loss"], a, atol=1e-4)
