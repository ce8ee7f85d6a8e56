"""Upstream training YAML (OSUM-EChat ``conf/ct_config.yaml``, OSUM's ``conf/*.yaml``) -> our
model / text / data sections, with a list of what could not be mapped.

What maps:

* ``encoder_conf`` (Whisper-shaped TransformerEncoder): ``output_size`` -> d_model,
  ``attention_heads``, ``linear_units`` -> ffn_dim, ``num_blocks``, the three dropouts,
  ``gradient_checkpointing``; ``input_dim`` (top level) -> encoder.input_dim;
* adapter: ``downsample_rate`` (4 only), ``adapter_type`` (``osum_echat`` = OSUM-EChat, ``gxl`` =
  OSUM: the same causal-conv + 4-block transformer + projection adapter);
* ``llm_path`` -> llm.path and text.tokenizer; the LLM shape from ``--llm_config`` (the HF
  ``config.json`` of that model) or, without it, from the known release LLMs;
* ``use_lora``, ``lora_rank``, ``lora_alpha``, ``lora_dropout`` -> lora (targets are upstream's
  fixed q/k/v/o/gate/down list); ``speech_token_num``;
* ``fire_module`` -> trainable parts (upstream's prefix rules, docs/training.md);
* the family: ``osum_echat`` adapters have a speech head and ChatML prompts; ``gxl`` (OSUM) is text
  output only, plain prompts ending with ``<|endoftext|>``, lower-cased labels, OSUM prompts.

Everything else (optimiser, scheduler, dataset_conf, encoder options our encoder fixes, ...) is
reported as unmapped; the encoder's positional table size is not in the YAML and follows the
family (30000 rows for OSUM-EChat, 1500 for OSUM).
"""

from __future__ import annotations

from typing import Any

# Release LLMs by hub name, for YAMLs converted without --llm_config.
KNOWN_LLMS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-3B-Instruct": dict(hidden_size=2048, num_layers=36, num_heads=16, num_kv_heads=2,
                                     intermediate_size=11008, vocab_size=151936, rope_theta=1000000.0,
                                     rms_norm_eps=1.0e-6, max_position_embeddings=32768,
                                     tie_word_embeddings=True),
    "Qwen/Qwen2-7B-Instruct": dict(hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4,
                                   intermediate_size=18944, vocab_size=152064, rope_theta=1000000.0,
                                   rms_norm_eps=1.0e-6, max_position_embeddings=32768,
                                   tie_word_embeddings=False),
}
HF_KEYS = {"hidden_size": "hidden_size", "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
           "num_key_value_heads": "num_kv_heads", "intermediate_size": "intermediate_size",
           "vocab_size": "vocab_size", "rope_theta": "rope_theta", "rms_norm_eps": "rms_norm_eps",
           "max_position_embeddings": "max_position_embeddings", "tie_word_embeddings": "tie_word_embeddings"}
ENCODER_KEYS = {"output_size": "d_model", "attention_heads": "num_heads", "linear_units": "ffn_dim",
                "num_blocks": "num_layers", "dropout_rate": "dropout",
                "positional_dropout_rate": "positional_dropout", "attention_dropout_rate": "attention_dropout",
                "gradient_checkpointing": "activation_checkpointing"}
# Encoder options whose upstream values are what our encoder implements (anything else: unmapped).
ENCODER_FIXED = {"activation_type": "gelu", "input_layer": "conv1d2", "key_bias": False, "normalize_before": True,
                 "pos_enc_layer_type": "abs_pos_whisper", "static_chunk_size": -1, "use_dynamic_chunk": False,
                 "use_dynamic_left_chunk": False}
TOP_MAPPED = {"model", "llm_path", "downsample_rate", "adapter_type", "input_dim", "tokenizer", "tokenizer_conf",
              "use_lora", "lora_alpha", "lora_rank", "lora_dropout", "speech_token_num", "fire_module",
              "encoder", "encoder_conf", "if_instruct"}
FAMILIES = {"osum_echat": "echat", "gxl": "osum"}


def trainable_from_fire_module(fire: str | None, use_lora: bool) -> list[str]:
    """Upstream ``fire_module`` -> our trainable parts (speech = speech embedding + head)."""
    llm = "lora" if use_lora else "llm"
    table = {"link": ["adapter", "speech"], "encoder": ["encoder"], "llm": [llm],
             "link_and_encoder": ["encoder", "adapter", "speech"],
             "link_and_encoder_and_lora": ["encoder", "adapter", llm, "speech"],
             "link_and_lora": ["adapter", llm, "speech"]}
    if fire is None:
        raise ValueError("fire_module is missing (upstream refuses to train without it)")
    if fire not in table:  # upstream silently trains everything for an unknown value
        raise ValueError(f"unknown fire_module {fire!r}; known: {sorted(table)}")
    return table[fire]


def convert(up: dict, llm_config: dict | None = None) -> tuple[dict, list[str]]:
    """-> (our config dict with model/text/data sections, notes on what was not mapped)."""
    notes: list[str] = []
    adapter_type = up.get("adapter_type", "osum_echat")
    if adapter_type not in FAMILIES:
        raise ValueError(f"adapter_type {adapter_type!r} has no equivalent here (known: {sorted(FAMILIES)})")
    family = FAMILIES[adapter_type]
    if up.get("encoder", "transformer") != "transformer":
        raise ValueError(f"encoder {up.get('encoder')!r}: only the Whisper-shaped 'transformer' is supported")
    enc_up = dict(up.get("encoder_conf") or {})
    encoder: dict[str, Any] = {"input_dim": int(up.get("input_dim", 80)),
                               "max_positions": 30000 if family == "echat" else 1500}
    for k, v in enc_up.items():
        if k in ENCODER_KEYS:
            encoder[ENCODER_KEYS[k]] = v
        elif k in ENCODER_FIXED and v == ENCODER_FIXED[k]:
            continue
        else:
            notes.append(f"encoder_conf.{k}: {v!r} (our encoder is fixed to the Whisper layout)")
    d_model = int(encoder.get("d_model", 1024))
    adapter = {"downsample_rate": int(up.get("downsample_rate", 4)), "d_model": d_model}
    llm_path = up.get("llm_path") or (up.get("tokenizer_conf") or {}).get("llm_path")
    if not llm_path:
        raise ValueError("llm_path is missing")
    llm: dict[str, Any] = {"path": llm_path, "init": "config"}
    if llm_config is not None:
        llm.update({ours: llm_config[hf] for hf, ours in HF_KEYS.items() if hf in llm_config})
        if "tie_word_embeddings" not in llm_config:
            llm["tie_word_embeddings"] = False  # transformers' Qwen2 default
    elif llm_path in KNOWN_LLMS:
        llm.update(KNOWN_LLMS[llm_path])
    else:
        raise ValueError(f"unknown LLM {llm_path!r}: pass its config.json with --llm_config")
    use_lora = bool(up.get("use_lora", False))
    lora = {"enable": use_lora, "r": int(up.get("lora_rank", 8)), "alpha": int(up.get("lora_alpha", 32)),
            "dropout": float(up.get("lora_dropout", 0.1)),
            "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]}
    model = {"encoder": encoder, "adapter": adapter, "llm": llm, "lora": lora,
             "speech_token_num": int(up.get("speech_token_num", 4097)), "speech_head": family == "echat",
             "trainable": trainable_from_fire_module(up.get("fire_module"), use_lora)}
    # the data side writes the same marker ids (ExperimentConfig.validate checks both agree)
    out: dict[str, Any] = {"model": model, "text": {"tokenizer": llm_path},
                           "data": {"speech_token_num": model["speech_token_num"]}}
    if family == "osum":
        out["text"].update({"prompt_style": "plain", "lowercase_labels": True})
        out["data"]["prompt_files"] = ["conf/prompts/osum.yaml"]
    if not up.get("if_instruct", True):
        notes.append("if_instruct: false (non-instruct prompt layout) is not supported; ChatML is used")
    for k in sorted(set(up) - TOP_MAPPED):
        notes.append(f"{k}: not a model setting (training / data options: see conf/stage*.yaml)")
    return out, notes
