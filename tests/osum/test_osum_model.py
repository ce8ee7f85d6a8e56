"""OSUM (the base understanding model) as a config of the same OsumEChat composition: the
release key layout on the meta device, strict loading of upstream-style files, LoRA merge."""

from pathlib import Path

import pytest
import torch

from osum_echat.config import load_config
from osum_echat.model.build import build_model, count_parameters
from osum_echat.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
# In released files but not model weights of ours: derived tables, top-level aliases of the LLM
# embedding / head, and the never-used speaker_head (an explicitly named, ignored upstream key).
ONLY_IN_FILE = {"encoder.embed.pos_enc.pe", "speech_transformer.embed.pos_enc.pe", "embed_tokens.weight",
                "lm_head.weight", "speaker_head.weight", "speaker_head.bias"}


def read_table(name):
    rows = [ln.split("\t") for ln in (FIXTURES / name).read_text().splitlines() if not ln.startswith("#")]
    return {k: tuple(int(x) for x in s.split(",")) for k, s in rows}


@pytest.mark.parametrize("lora,table,n", [(True, "osum_release_keys_lora.tsv", 1128),
                                          (False, "osum_release_keys.tsv", 792)])
def test_release_osum_config_has_the_upstream_layout_on_meta(lora, table, n):
    expected = read_table(table)
    assert len(expected) == n
    cfg = load_config(REPO / "conf" / "model" / "osum_7b.yaml", [f"model.lora.enable={str(lora).lower()}",
                                                                  "model.trainable=[encoder,adapter]"])
    with torch.device("meta"):
        model = build_model(cfg.model)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(expected) - set(ours) == ONLY_IN_FILE
    assert not set(ours) - set(expected)
    assert all(ours[k] == expected[k] for k in ours)
    assert model.speech_head is None
    assert not model.llama_model.config.tie_word_embeddings
    if lora:  # 8.02 B in the file, of which the unused speaker_head is 14.7 M
        assert abs(count_parameters(model) + 4097 * 3585 - 8.018e9) < 2e6


def tiny_osum_cfg(lora=True):
    cfg = load_config(REPO / "conf" / "model" / "tiny.yaml",
                      ["model.llm.tie_word_embeddings=false", "model.speech_head=false",
                       f"model.lora.enable={str(lora).lower()}", "model.lora.r=4",
                       "model.trainable=[encoder,adapter" + (",lora]" if lora else "]")])
    return cfg.model


def upstream_style_state(model):
    """A state dict shaped like infer.pt: aliases, derived tables, a speaker_head, bf16."""
    sd = {k: v.detach().to(torch.bfloat16) for k, v in model.state_dict().items()}
    llm = "llama_model.base_model.model." if any(".lora_" in k for k in sd) else "llama_model."
    sd["embed_tokens.weight"] = sd[llm + "model.embed_tokens.weight"]
    sd["lm_head.weight"] = sd[llm + "lm_head.weight"]
    sd["encoder.embed.pos_enc.pe"] = torch.zeros(1, 1500, 64, dtype=torch.bfloat16)
    sd["speech_transformer.embed.pos_enc.pe"] = torch.zeros(1, 5000, 64, dtype=torch.bfloat16)
    sd["speaker_head.weight"] = torch.zeros(4097, 64, dtype=torch.bfloat16)
    sd["speaker_head.bias"] = torch.zeros(4097, dtype=torch.bfloat16)
    return sd


def test_strict_load_of_upstream_style_lora_file_with_module_prefix(tmp_path):
    cfg = tiny_osum_cfg()
    torch.manual_seed(0)
    src = build_model(cfg)
    with torch.no_grad():  # non-zero LoRA B so the LoRA weights matter
        for n, p in src.named_parameters():
            if "lora_B" in n:
                p.normal_()
    sd = upstream_style_state(src)
    assert not torch.equal(sd["lm_head.weight"], sd["embed_tokens.weight"])  # untied: two tensors
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "infer.pt")
    torch.manual_seed(1)
    dst = build_model(cfg)
    load_checkpoint(dst, tmp_path / "infer.pt")
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a.to(torch.bfloat16).float(), b), k
    bad = dict(sd)
    bad["lm_head.weight"] = bad["lm_head.weight"] + 1
    torch.save(bad, tmp_path / "bad_alias.pt")
    with pytest.raises(CheckpointError, match="alias"):
        load_checkpoint(build_model(cfg), tmp_path / "bad_alias.pt")
    extra = dict(sd)
    extra["speaker_head.extra"] = torch.zeros(2)
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="speaker_head.extra"):
        load_checkpoint(build_model(cfg), tmp_path / "extra.pt")


def test_an_echat_file_does_not_load_into_osum(tmp_path):
    torch.manual_seed(0)
    echat_cfg = load_config(REPO / "conf" / "model" / "tiny.yaml").model
    save_checkpoint(build_model(echat_cfg), tmp_path / "echat.pt")
    with pytest.raises(CheckpointError, match="speech_head"):
        load_checkpoint(build_model(tiny_osum_cfg(lora=False)), tmp_path / "echat.pt")


def test_text_only_loss_equals_plain_cross_entropy_with_gradients():
    from osum_echat.model.loss import joint_cross_entropy

    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 16, generator=g, requires_grad=True)
    w = torch.randn(50, 16, generator=g, requires_grad=True)
    t = torch.randint(0, 50, (7,), generator=g)
    total, rows, pred = joint_cross_entropy(h, t, w, w.new_zeros(0, 16), None, chunk_size=3)
    ref = torch.nn.functional.cross_entropy(h @ w.t(), t, reduction="sum")
    assert torch.allclose(total, ref, atol=1e-5) and torch.equal(pred, (h @ w.t()).argmax(-1))
    ga = torch.autograd.grad(total, (h, w))
    gb = torch.autograd.grad(ref, (h, w))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ga, gb))
    with pytest.raises(ValueError, match="no speech head"):
        joint_cross_entropy(h, torch.tensor([50] * 7), w, w.new_zeros(0, 16), None)


@pytest.mark.gpu
def test_release_osum_weights_take_16_gb_in_bf16_on_an_accelerator():
    """The memory claim of docs/inference.md: 8.0 B parameters, about 16 GB of bf16 weights;
    one forward over a 10 s input runs and is finite."""
    from osum_echat.device import autocast, memory_allocated_mb, resolve_device
    from osum_echat.model.batch import Example, SpeechInSegment, TextSegment, collate

    dev = resolve_device("auto")
    cfg = load_config(REPO / "conf" / "model" / "osum_7b.yaml")
    before = memory_allocated_mb(dev)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with dev:
            model = build_model(cfg.model, apply_trainable=False).eval()
    finally:
        torch.set_default_dtype(old)
    weights_gb = (memory_allocated_mb(dev) - before) / 1024
    assert 14.5 < weights_gb < 15.5  # 8.003e9 x 2 bytes = 16.0e9 bytes = 14.9 GiB
    batch = collate([Example([TextSegment([100, 200]), SpeechInSegment(torch.randn(1000, 80)),
                              TextSegment([300, 400, 500], supervised=True)], key="k")], 152064)
    with torch.no_grad(), autocast(dev, "bf16"):  # fp32 features into bf16 weights
        out = model(batch.to(dev))
    assert torch.isfinite(out["loss"])
