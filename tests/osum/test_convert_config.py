"""bin.convert_config on upstream-style YAMLs written here (the layout of OSUM-EChat's
conf/ct_config.yaml, and an OSUM-like variant): the result loads as our config and equals the
release model configs; unmapped keys are reported."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from osum_echat.bin.convert_config import main as convert_main
from osum_echat.config import ExperimentConfig, from_dict, load_config

REPO = Path(__file__).resolve().parents[2]
ENCODER_CONF = {"activation_type": "gelu", "attention_dropout_rate": 0.0, "attention_heads": 16,
                "dropout_rate": 0.1, "gradient_checkpointing": True, "input_layer": "conv1d2",
                "key_bias": False, "linear_units": 4096, "normalize_before": True, "num_blocks": 24,
                "output_size": 1024, "pos_enc_layer_type": "abs_pos_whisper", "positional_dropout_rate": 0.1,
                "static_chunk_size": -1, "use_dynamic_chunk": False, "use_dynamic_left_chunk": False}


def upstream_echat() -> dict:
    return {"model": "osum_echat", "llm_path": "Qwen/Qwen2.5-3B-Instruct", "downsample_rate": 4,
            "adapter_type": "osum_echat", "if_instruct": True, "input_dim": 80, "tokenizer": "huggingface",
            "tokenizer_conf": {"llm_path": "Qwen/Qwen2.5-3B-Instruct"}, "use_lora": False, "lora_alpha": 32,
            "lora_rank": 64, "lora_dropout": 0.1, "speech_token_num": 4097,
            "fire_module": "link_and_encoder_and_lora", "grad_clip": 5, "accum_grad": 8,
            "optim": "adamw", "optim_conf": {"lr": 1.0e-6}, "dataset": "asr", "dataset_conf": {"shuffle": True},
            "encoder": "transformer", "encoder_conf": dict(ENCODER_CONF)}


def upstream_osum() -> dict:
    up = upstream_echat()
    up.update({"model": "llmasr", "llm_path": "Qwen/Qwen2-7B-Instruct", "adapter_type": "gxl", "use_lora": True,
               "lora_rank": 8, "tokenizer_conf": {"llm_path": "Qwen/Qwen2-7B-Instruct"}})
    up["encoder_conf"]["use_sdpa"] = True  # an option our encoder does not take: reported
    return up


def run(tmp_path, capsys, up, *extra):
    src = tmp_path / "up.yaml"
    src.write_text(yaml.safe_dump(up), encoding="utf-8")
    rc = convert_main([str(src), *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_echat_like_config_equals_the_release_config(tmp_path, capsys):
    rc, text, err = run(tmp_path, capsys, upstream_echat())
    assert rc == 0
    cfg = from_dict(ExperimentConfig, yaml.safe_load(text))
    assert cfg.model == load_config(REPO / "conf/model/osum_echat_3b.yaml").model
    assert "# Not mapped:" in text and "optim_conf" in text and "grad_clip" in err


def test_osum_like_config_equals_the_osum_release_config(tmp_path, capsys):
    rc, text, err = run(tmp_path, capsys, upstream_osum())
    assert rc == 0
    cfg = from_dict(ExperimentConfig, yaml.safe_load(text))
    ref = load_config(REPO / "conf/model/osum_7b.yaml")
    assert cfg.model == ref.model
    assert (cfg.text.prompt_style, cfg.text.lowercase_labels) == ("plain", True)
    assert cfg.data.prompt_files == ref.data.prompt_files
    assert "encoder_conf.use_sdpa" in err


def test_llm_shape_from_config_json_and_errors(tmp_path, capsys):
    hf = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "intermediate_size": 128, "vocab_size": 512, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
          "max_position_embeddings": 4096, "tie_word_embeddings": True}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    up = upstream_echat()
    up["llm_path"] = "/models/some-llm"
    rc, text, _ = run(tmp_path, capsys, up, "--llm_config", str(tmp_path / "config.json"))
    assert rc == 0
    llm = from_dict(ExperimentConfig, yaml.safe_load(text)).model.llm
    assert (llm.hidden_size, llm.num_layers, llm.vocab_size, llm.tie_word_embeddings) == (64, 2, 512, True)
    rc, _, err = run(tmp_path, capsys, up)  # unknown LLM without its config.json
    assert rc == 2 and "--llm_config" in err
    bad = upstream_echat()
    bad["fire_module"] = "everything"
    rc, _, err = run(tmp_path, capsys, bad)
    assert rc == 2 and "fire_module" in err
