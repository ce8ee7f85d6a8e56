"""from_pretrained on the fake folder, tolerant YAML, prompt frontend with tiny ONNX models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osum_echat.token2wav.config import Tagged, config_from_yaml, load_tagged_yaml, tiny_config
from osum_echat.token2wav.frontend import PromptFrontend, SpeakerEncoder, Voice, prompt_mel
from osum_echat.token2wav.model import Token2Wav


def test_yaml_tags_recorded_and_refs_resolved(fake_dir):
    tree = load_tagged_yaml(fake_dir / "cosyvoice.yaml")
    assert isinstance(tree["flow"], Tagged) and tree["flow"].class_name == "MaskedDiffWithXvec"
    assert tree["flow"].value["spk_embed_dim"] == 192  # !ref <spk_embed_dim>
    assert tree["hift"].value["sampling_rate"] == 22050
    assert config_from_yaml(fake_dir / "cosyvoice.yaml") == tiny_config()


def test_yaml_rejects_other_architecture(tmp_path, fake_dir):
    text = (fake_dir / "cosyvoice.yaml").read_text().replace("flow.MaskedDiffWithXvec", "flow.CausalMaskedDiffWithXvec")
    (tmp_path / "cosyvoice.yaml").write_text(text)
    with pytest.raises(ValueError, match="CausalMaskedDiffWithXvec"):
        config_from_yaml(tmp_path / "cosyvoice.yaml")


def test_from_pretrained_and_prompt_voice(fake_dir, prompt_wav, tmp_path):
    t2w = Token2Wav.from_pretrained(fake_dir, device="cpu", cache_dir=tmp_path / "voices")
    voice = t2w.voice(prompt_wav)
    assert voice.embedding.shape == (192,) and voice.embedding.abs().sum() > 0
    assert voice.tokens.numel() == pytest.approx(1.5 * 25, abs=2)  # 25 Hz prompt codes
    assert voice.mel.shape == (int(1.5 * 22050) // 256, 80)
    assert t2w.voice(prompt_wav) is voice  # memory cache
    assert len(list((tmp_path / "voices").glob("voice_*.pt"))) == 1  # disk cache
    wav, sr = t2w.synthesize(list(range(50)), voice=prompt_wav)
    assert sr == 22050 and len(wav) == 50 * 22050 // 6400 * 256
    wav0, _ = t2w.synthesize(list(range(50)), voice=None)
    assert not np.allclose(wav, wav0)


def test_from_pretrained_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="flow.pt"):
        (tmp_path / "cosyvoice.yaml").write_text("flow: 1\n")
        Token2Wav.from_pretrained(tmp_path, device="cpu")


def test_speaker_embedding_frontend(fake_dir):
    enc = SpeakerEncoder(fake_dir / "campplus.onnx")
    audio = torch.randn(16000) * 0.1
    feat = SpeakerEncoder.features(audio)
    assert feat.shape[1] == 80 and torch.allclose(feat.mean(0), torch.zeros(80), atol=1e-4)
    emb = enc.embed(audio)
    assert emb.shape == (192,) and emb.abs().max() > 0
    assert torch.equal(emb, enc.embed(audio))
    assert not torch.allclose(emb, enc.embed(torch.randn(16000) * 0.5))


def test_prompt_mel_matcha_shape():
    cfg = tiny_config().mel
    audio = torch.randn(22050) * 0.1
    mel = prompt_mel(audio, cfg)
    assert mel.shape == (22050 // 256, 80)
    assert mel.min() >= np.log(1e-5) - 1e-4


def test_voice_roundtrip(tmp_path):
    v = Voice(torch.arange(5), torch.randn(17, 80), torch.randn(192), "x")
    v.save(tmp_path / "v.pt")
    w = PromptFrontend(tiny_config().mel).voice(tmp_path / "v.pt")
    assert torch.equal(v.tokens, w.tokens) and torch.equal(v.mel, w.mel)


def test_check_command(fake_dir, tmp_path):
    from osum_echat.bin import check_token2wav as check

    out = tmp_path / "x.wav"
    summary = check.main(["--dir", str(fake_dir), "--codes", "1 2 3 4 5 6 7 8 9 10", "--device", "cpu", "--out", str(out)])
    assert out.exists() and summary["samples"] == summary["expected_samples"] == 10 * 22050 // 6400 * 256
