from pathlib import Path

import pytest

from osum_echat.config import ConfigError, ExperimentConfig, load_config, replace, save_config, to_dict

REPO = Path(__file__).resolve().parents[1]


def test_unknown_key_names_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  llm:\n    num_layerz: 2\n")
    with pytest.raises(ConfigError, match=r"model\.llm\.num_layerz"):
        load_config(p)


def test_bad_type_names_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  encoder:\n    num_layers: many\n")
    with pytest.raises(ConfigError, match=r"model\.encoder\.num_layers"):
        load_config(p)
    with pytest.raises(ConfigError, match="model.llm.hidden_size"):
        load_config(None, ["model.llm.hidden_size=1.5"])


def test_overrides_and_yaml_floats():
    cfg = load_config(REPO / "conf/model/tiny.yaml", ["model.llm.num_layers=3", "--model.llm.rope_theta=1e4"])
    assert cfg.model.llm.num_layers == 3
    assert cfg.model.llm.rope_theta == 10000.0  # YAML 1.1 reads 1e4 as a string; coerced
    with pytest.raises(ConfigError, match="a.b.c=value"):
        load_config(None, ["model.llm.num_layers"])
    with pytest.raises(ConfigError, match="trainable"):
        load_config(None, ["model.trainable=[encoder,brain]"])


def test_base_inheritance_and_round_trip(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {REPO / 'conf/model/tiny.yaml'}\nmodel:\n  llm:\n    num_layers: 5\n")
    cfg = load_config(child)
    assert cfg.model.llm.num_layers == 5 and cfg.model.llm.hidden_size == 64
    out = tmp_path / "resolved.yaml"
    save_config(cfg, out)
    assert to_dict(load_config(out)) == to_dict(cfg)
    assert replace(cfg, ["model.llm.num_layers=1"]).model.llm.num_layers == 1


def test_release_defaults_are_the_released_architecture():
    cfg = ExperimentConfig()
    assert cfg.model.llm.vocab_size == 151936 and cfg.model.speech_token_num == 4097
    assert to_dict(load_config(REPO / "conf/model/osum_echat_3b.yaml").model) == to_dict(cfg.model)


def test_every_shipped_yaml_loads():
    files = sorted((REPO / "conf").rglob("*.yaml"))
    files += sorted((REPO / "recipes").rglob("conf/*.yaml")) if (REPO / "recipes").is_dir() else []
    checked = 0
    for f in files:
        if f.parent.name in ("prompts", "deepspeed", "data", "eval") or f.name.startswith("data_"):
            continue  # not experiment configs
        load_config(f)
        checked += 1
    assert checked >= 2
