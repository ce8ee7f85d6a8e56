"""Checkpoint loading/saving/conversion on tiny models and files made here."""

from pathlib import Path

import pytest
import torch

from osum_echat.model.batch import Example, SpeechInSegment, TextSegment, collate
from osum_echat.model.build import build_model
from osum_echat.model.checkpoint import (CheckpointError, init_encoder_from_whisper, init_llm_from_hf,
                                         load_checkpoint, read_state_dict, save_checkpoint)
from osum_echat.model.export import export_hf, load_hf_export


def batch():
    g = torch.Generator().manual_seed(3)
    return collate([Example([TextSegment([1, 2]), SpeechInSegment(torch.randn(90, 80, generator=g)),
                             TextSegment([5, 6, 7], supervised=True)], key="k")], 2048)


def fresh(cfg, seed):
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def test_save_load_round_trip_is_exact(tiny_model_cfg, tmp_path):
    a, b = fresh(tiny_model_cfg, 0), fresh(tiny_model_cfg, 1)
    save_checkpoint(a, tmp_path / "m.pt", info={"step": 3})
    assert (tmp_path / "m.yaml").read_text().startswith("step: 3")
    load_checkpoint(b, tmp_path / "m.pt")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    with torch.no_grad():
        assert torch.equal(a(batch())["loss"], b(batch())["loss"])


def test_missing_extra_and_misshaped_keys_are_named(tiny_model_cfg, tmp_path):
    model = fresh(tiny_model_cfg, 0)
    sd = model.state_dict()
    broken = dict(sd)
    del broken["speech_head.bias"]
    broken["speech_head.extra_thing"] = torch.zeros(2)
    broken["down_sample_2.conv.4.weight"] = torch.zeros(3, 3, 3)
    torch.save(broken, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, tmp_path / "bad.pt")
    msg = str(err.value)
    assert "speech_head.bias" in msg and "speech_head.extra_thing" in msg and "down_sample_2.conv.4.weight" in msg


def test_upstream_style_file_with_aliases_buffers_and_bf16(tiny_model_cfg, tmp_path):
    """Released files: bf16 everywhere, pos_enc tables, top-level embed/lm_head aliases, no
    `module.` prefix; DeepSpeed dumps hold the same under 'module'."""
    src = fresh(tiny_model_cfg, 0)
    sd = {k: v.to(torch.bfloat16) for k, v in src.state_dict().items()}
    sd["encoder.embed.pos_enc.pe"] = torch.zeros(1, 30000, 64, dtype=torch.bfloat16)
    sd["speech_transformer.embed.pos_enc.pe"] = torch.zeros(1, 5000, 64, dtype=torch.bfloat16)
    sd["embed_tokens.weight"] = sd["llama_model.model.embed_tokens.weight"]
    sd["lm_head.weight"] = sd["llama_model.lm_head.weight"]
    torch.save(sd, tmp_path / "release_like.pt")
    torch.save({"module": sd}, tmp_path / "mp_rank_00_model_states.pt")
    for name in ("release_like.pt", "mp_rank_00_model_states.pt"):
        dst = fresh(tiny_model_cfg, 1)
        load_checkpoint(dst, tmp_path / name)
        assert dst.speech_head.weight.dtype == torch.float32
        assert torch.equal(dst.speech_head.weight, src.speech_head.weight.to(torch.bfloat16).float())
    bad = dict(sd)
    bad["lm_head.weight"] = bad["lm_head.weight"] + 1
    torch.save(bad, tmp_path / "bad_alias.pt")
    with pytest.raises(CheckpointError, match="alias"):
        load_checkpoint(fresh(tiny_model_cfg, 1), tmp_path / "bad_alias.pt")


def test_plain_checkpoint_into_lora_model(tiny_model_cfg, tmp_path):
    src = fresh(tiny_model_cfg, 0)
    save_checkpoint(src, tmp_path / "plain.pt")
    tiny_model_cfg.lora.enable = True
    dst = fresh(tiny_model_cfg, 1)
    load_checkpoint(dst, tmp_path / "plain.pt")
    with torch.no_grad():  # LoRA B is zero at init, so outputs equal the plain model
        assert torch.allclose(src(batch())["loss"], dst(batch())["loss"], atol=1e-6)


def test_export_hf_round_trip(tiny_model_cfg, tmp_path):
    src = fresh(tiny_model_cfg, 0)
    export_hf(src, tiny_model_cfg, tmp_path / "export")
    model, cfg = load_hf_export(tmp_path / "export")
    assert cfg == tiny_model_cfg
    with torch.no_grad():
        assert torch.equal(src(batch())["loss"], model.eval()(batch())["loss"])


def test_encoder_init_from_openai_whisper_file_and_hf_folder(tiny_model_cfg, tmp_path):
    whisper = pytest.importorskip("whisper")
    from transformers import WhisperConfig, WhisperModel

    dims = whisper.model.ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=4,
                                         n_audio_layer=2, n_vocab=100, n_text_ctx=8, n_text_state=64,
                                         n_text_head=4, n_text_layer=1)
    torch.manual_seed(0)
    ref = whisper.model.Whisper(dims)
    torch.save({"dims": dims.__dict__, "model_state_dict": ref.state_dict()}, tmp_path / "tiny.pt")
    model = fresh(tiny_model_cfg, 1)
    tiny_model_cfg.encoder.ffn_dim = 128
    # tiny.yaml has ffn 128 while whisper uses 4*d = 256: a mismatch must be reported clearly
    with pytest.raises(CheckpointError, match="feed_forward"):
        init_encoder_from_whisper(model, tmp_path / "tiny.pt")
    tiny_model_cfg.encoder.ffn_dim = 256
    model = fresh(tiny_model_cfg, 1)
    init_encoder_from_whisper(model, tmp_path / "tiny.pt")
    assert torch.equal(model.encoder.encoders[1].self_attn.linear_k.weight, ref.encoder.blocks[1].attn.key.weight)

    hf = WhisperModel(WhisperConfig(num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                                    encoder_ffn_dim=256, decoder_layers=1, decoder_attention_heads=4,
                                    decoder_ffn_dim=64, vocab_size=51865, max_source_positions=1500,
                                    max_target_positions=16))
    hf.save_pretrained(tmp_path / "hf_whisper")
    init_encoder_from_whisper(model, tmp_path / "hf_whisper")
    assert torch.equal(model.encoder.encoders[0].feed_forward.w_2.bias, hf.encoder.layers[0].fc2.bias)
    assert torch.equal(model.encoder.embed.conv[2].weight, hf.encoder.conv2.weight)


def test_llm_init_from_hf_folder(tiny_model_cfg, tmp_path):
    from transformers import Qwen2ForCausalLM

    from osum_echat.model.build import qwen2_config

    torch.manual_seed(5)
    hf = Qwen2ForCausalLM(qwen2_config(tiny_model_cfg.llm))
    hf.save_pretrained(tmp_path / "qwen")
    model = fresh(tiny_model_cfg, 0)
    init_llm_from_hf(model, tmp_path / "qwen")
    assert torch.equal(model.llama_model.model.layers[1].mlp.up_proj.weight, hf.model.layers[1].mlp.up_proj.weight)
    tiny_model_cfg.llm.init = "pretrained"
    tiny_model_cfg.llm.path = str(tmp_path / "qwen")
    built = build_model(tiny_model_cfg)
    assert torch.equal(built.llama_model.model.norm.weight, hf.model.norm.weight)
    tiny_model_cfg.llm.num_layers = 3
    with pytest.raises(ValueError, match="num_hidden_layers"):
        build_model(tiny_model_cfg)


def test_read_state_dict_rejects_non_checkpoints(tmp_path):
    torch.save({"a": 1}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError):
        read_state_dict(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "none.pt")


def test_init_model_cli(tiny_model_cfg, tmp_path):
    from transformers import Qwen2ForCausalLM

    from osum_echat.bin.init_model import main
    from osum_echat.model.build import qwen2_config

    torch.manual_seed(7)
    hf = Qwen2ForCausalLM(qwen2_config(tiny_model_cfg.llm))
    hf.save_pretrained(tmp_path / "qwen")
    cfg = Path(__file__).resolve().parents[2] / "conf" / "model" / "tiny.yaml"
    main(["--config", str(cfg), "--llm", str(tmp_path / "qwen"), "--out", str(tmp_path / "init.pt")])
    sd = read_state_dict(tmp_path / "init.pt")
    assert torch.equal(sd["llama_model.model.layers.0.self_attn.q_proj.weight"],
                       hf.model.layers[0].self_attn.q_proj.weight)
    assert (tmp_path / "init.yaml").is_file()
