"""Model core: release key layout, shapes and lengths, numerics against references, loss."""

from pathlib import Path

import pytest
import torch

from osum_echat.model.batch import (SPEECH, Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate,
                                    example_length, speech_embed_length)
from osum_echat.model.build import build_model, count_parameters
from osum_echat.model.loss import joint_cross_entropy, reference_joint_cross_entropy

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release_checkpoint_keys.tsv"
ALLOWED_ONLY_IN_FILE = {"encoder.embed.pos_enc.pe", "speech_transformer.embed.pos_enc.pe",
                        "embed_tokens.weight", "lm_head.weight"}


def read_fixture():
    rows = {}
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        k, shape = line.split("\t")
        rows[k] = tuple(int(x) for x in shape.split(","))
    return rows


def test_release_config_key_set_on_meta_device():
    from osum_echat.config import ExperimentConfig

    expected = read_fixture()
    assert len(expected) == 888
    with torch.device("meta"):
        model = build_model(ExperimentConfig().model)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(expected) - set(ours) == ALLOWED_ONLY_IN_FILE
    assert not set(ours) - set(expected)
    assert all(ours[k] == expected[k] for k in ours)
    assert abs(count_parameters(model) - 3.459e9) < 1e6


def example(frames=100, text=(4, 5, 6), codes=(7, 8), key="a"):
    segs = [TextSegment([1, 2, 3]), SpeechInSegment(torch.randn(frames, 80)),
            TextSegment(list(text), supervised=True)]
    if codes:
        segs.append(SpeechOutSegment([4096, *codes, 4096], supervised=True))
    return Example(segs, key=key)


def test_lengths_and_batch_layout(tiny_model_cfg):
    assert [speech_embed_length(t) for t in (1, 8, 9, 100, 1000)] == [1, 1, 2, 13, 125]
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg).eval()
    feats = torch.randn(2, 1000, 80)
    x, lens = model.encoder(feats, torch.tensor([1000, 777]))
    assert x.shape == (2, 500, 64) and lens.tolist() == [500, 389]
    e, elen = model.embed_speech(feats, torch.tensor([1000, 777]))
    assert e.shape == (2, 125, 64) and elen.tolist() == [125, speech_embed_length(777)]
    ex = example()
    b = collate([ex], 2048)
    assert b.input_ids.shape[1] == example_length(ex) == 3 + 13 + 2 + 3 + 4
    # targets: last prompt token predicts nothing; answer ids and joint-space speech ids follow
    sup = b.labels[0][b.labels[0] != -100].tolist()
    assert sup == [4, 5, 6, 2048 + 4096, 2048 + 7, 2048 + 8, 2048 + 4096]
    assert b.labels[0, 17].item() == 4  # the 4098 marker position predicts the first answer token


def test_padded_rows_equal_single_rows(tiny_model_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg).eval()
    feats = torch.randn(2, 301, 80)
    feats[1, 157:] = 0  # batches are zero-padded
    lens = torch.tensor([301, 157])
    batched, _ = model.encoder(feats, lens)
    alone, _ = model.encoder(feats[1:, :157], lens[1:])
    assert torch.allclose(batched[1, :79], alone[0], atol=1e-5)
    ea, eb = example(key="a"), example(57, key="b")
    with torch.no_grad():
        a = model(collate([ea, eb], 2048))
        b = model(collate([eb], 2048))
        p = model(collate([ea, eb], 2048, pack_max_tokens=256))
        full = model(collate([ea], 2048))["loss"]
    total = (a["loss"] * a["num_tokens"]).item()
    assert abs(total - (full * 7 + b["loss"] * b["num_tokens"]).item()) < 1e-4
    assert abs(p["loss"].item() - a["loss"].item()) < 1e-5


def test_encoder_matches_openai_whisper_after_conversion():
    whisper = pytest.importorskip("whisper")
    from osum_echat.model.checkpoint import whisper_to_encoder_state
    from osum_echat.model.config import EncoderConfig
    from osum_echat.model.encoder import WhisperEncoder

    torch.manual_seed(0)
    dims = whisper.model.ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=4,
                                         n_audio_layer=2, n_vocab=100, n_text_ctx=8, n_text_state=64,
                                         n_text_head=4, n_text_layer=1)
    ref = whisper.model.Whisper(dims).eval()
    for p in ref.parameters():  # whisper zero-inits some weights; make the test meaningful
        torch.nn.init.normal_(p, std=0.05)
    enc = WhisperEncoder(EncoderConfig(d_model=64, num_heads=4, ffn_dim=256, num_layers=2,
                                       dropout=0, positional_dropout=0)).eval()
    sd = whisper_to_encoder_state(ref.state_dict())
    enc.load_state_dict({k[len("encoder."):]: v for k, v in sd.items()})
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        want = ref.encoder(mel)
        got, lens = enc(mel.transpose(1, 2), torch.tensor([3000]))
    assert lens.item() == 1500
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_joint_cross_entropy_matches_reference_values_and_grads():
    torch.manual_seed(0)
    h = torch.randn(37, 16, requires_grad=True)
    wt = torch.randn(50, 16, requires_grad=True)
    ws = torch.randn(11, 16, requires_grad=True)
    bs = torch.randn(11, requires_grad=True)
    t = torch.randint(0, 61, (37,))
    total, loss, pred = joint_cross_entropy(h, t, wt, ws, bs, chunk_size=8)
    ref = reference_joint_cross_entropy(h, t, wt, ws, bs)
    assert torch.allclose(loss, ref, atol=1e-5) and torch.allclose(total, ref.sum(), atol=1e-4)
    logits = torch.cat([h @ wt.t(), h @ ws.t() + bs], -1)
    assert torch.equal(pred, logits.argmax(-1))
    g1 = torch.autograd.grad(total * 0.37, (h, wt, ws, bs))
    g2 = torch.autograd.grad(ref.sum() * 0.37, (h, wt, ws, bs))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():  # no gradient work (and no graph) when autograd is off
        total_ng, loss_ng, _ = joint_cross_entropy(h, t, wt, ws, bs, chunk_size=8)
    assert torch.allclose(loss_ng, loss) and not total_ng.requires_grad
    frozen_w = wt.detach()  # a frozen head gets no gradient, the rest still does
    total2, _, _ = joint_cross_entropy(h, t, frozen_w, ws, bs, chunk_size=5)
    gh2, = torch.autograd.grad(total2 * 0.37, (h,))
    assert torch.allclose(gh2, g2[0], atol=1e-5)


def test_loss_decreases_on_one_batch(tiny_model_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg)
    batch = collate([example(key="a"), example(80, text=(9, 10, 11, 12), codes=(1, 2, 3), key="b")], 2048)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.5 * losses[0]
    assert {"loss_text", "loss_speech", "acc_text", "acc_speech", "num_tokens"} <= set(out)


def test_frozen_parts_get_no_gradient(tiny_model_cfg):
    from osum_echat.model.trainable import set_trainable

    model = build_model(tiny_model_cfg)
    set_trainable(model, ["adapter", "speech"])
    model(collate([example()], 2048))["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith(("encoder.", "llama_model.")):
            assert p.grad is None, name
    assert model.speech_llama_proj.weight.grad is not None
    assert model.speech_head.weight.grad is not None
    with pytest.raises(ValueError, match="unknown trainable"):
        set_trainable(model, ["brain"])


def test_lora_merge_gives_same_logits(tiny_model_cfg):
    from osum_echat.model.trainable import merge_lora

    tiny_model_cfg.lora.enable = True
    tiny_model_cfg.trainable = ["adapter", "lora", "speech"]
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg).eval()
    keys = list(model.state_dict())
    assert any(".lora_A." in k for k in keys) and any("base_model.model.model.layers" in k for k in keys)
    assert all(not p.requires_grad for n, p in model.named_parameters()
               if n.startswith("llama_model") and ".lora_" not in n)
    for n, p in model.named_parameters():
        if ".lora_B." in n:
            torch.nn.init.normal_(p, std=0.1)  # LoRA B starts at zero: make it matter
    batch = collate([example()], 2048)
    with torch.no_grad():
        before = model.hidden_states(batch)
        merge_lora(model)
        after = model.hidden_states(batch)
    assert torch.allclose(before, after, atol=1e-5)
    assert not any("lora" in k or "base_model" in k for k in model.state_dict())


def test_weighted_joint_cross_entropy_matches_reference():
    torch.manual_seed(1)
    h = torch.randn(23, 16, requires_grad=True)
    wt, ws = torch.randn(40, 16, requires_grad=True), torch.randn(9, 16, requires_grad=True)
    bs = torch.randn(9, requires_grad=True)
    t, w = torch.randint(0, 49, (23,)), torch.rand(23)
    total, loss, _ = joint_cross_entropy(h, t, wt, ws, bs, chunk_size=6, weights=w)
    ref = reference_joint_cross_entropy(h, t, wt, ws, bs)
    assert torch.allclose(loss, ref, atol=1e-5)  # per-row losses stay unweighted
    assert torch.allclose(total, (w * ref).sum(), atol=1e-4)
    for a, b in zip(torch.autograd.grad(total, (h, wt, ws, bs)), torch.autograd.grad((w * ref).sum(), (h, wt, ws, bs))):
        assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        joint_cross_entropy(h, t, wt, ws, bs, weights=w[:5])


def test_sample_loss_norm_is_the_mean_of_example_means(tiny_model_cfg):
    import dataclasses

    torch.manual_seed(0)
    token = build_model(tiny_model_cfg).eval()
    sample = build_model(dataclasses.replace(tiny_model_cfg, loss_norm="sample")).eval()
    sample.load_state_dict(token.state_dict())
    long_ex = example(key="a", text=tuple(range(4, 30)), codes=())  # 26 supervised tokens
    short_ex = example(60, key="b", text=(9,), codes=())  # 1 supervised token
    with torch.no_grad():
        each = [token(collate([e], 2048))["loss"].item() for e in (long_ex, short_ex)]
        assert [token(collate([e], 2048))["num_tokens"].item() for e in (long_ex, short_ex)] == [26, 1]
        for pack in (None, 256):  # one row per example, then both packed in one row
            b = collate([long_ex, short_ex], 2048, pack_max_tokens=pack)
            tok, smp = token(b), sample(b)
            assert abs(smp["loss"].item() - sum(each) / 2) < 1e-4
            assert abs(tok["loss"].item() - (26 * each[0] + each[1]) / 27) < 1e-4
            assert abs(smp["loss_token"].item() - tok["loss"].item()) < 1e-5  # logged metric
    with pytest.raises(ValueError, match="loss_norm"):
        dataclasses.replace(tiny_model_cfg, loss_norm="batch").validate()


def test_speech_loss_weight_weighs_code_targets(tiny_model_cfg):
    """A speech-code target counts speech_loss_weight times a text target, in both loss norms,
    and the gradient follows the weighted objective (not only the logged value)."""
    import dataclasses

    torch.manual_seed(0)
    plain = build_model(tiny_model_cfg).eval()
    ex = [example(key="a", text=(4, 5, 6), codes=(7, 8, 9, 10, 11)),
          example(60, key="b", text=(9, 10), codes=(12, 13))]
    b = collate(ex, 2048)
    with torch.no_grad():
        ref = plain(b, per_token=True)
    tok = ref["per_token_loss"][b.labels != -100]
    is_speech = b.labels[b.labels != -100] >= plain.text_vocab_size
    assert int(is_speech.sum()) == 11 and int((~is_speech).sum()) == 5  # 7 codes + 2x2 boundaries
    w = 0.25
    for norm in ("token", "sample"):
        m = build_model(dataclasses.replace(tiny_model_cfg, loss_norm=norm, speech_loss_weight=w)).eval()
        m.load_state_dict(plain.state_dict())
        out = m(b)
        base = torch.where(is_speech, torch.full_like(tok, w), torch.ones_like(tok))
        if norm == "token":
            want = (base * tok).sum() / base.sum()
        else:  # per example: its own weighted mean, then the mean over the two examples
            owner = torch.tensor([0] * 10 + [1] * 6)
            want = sum((base[owner == i] * tok[owner == i]).sum() / base[owner == i].sum() for i in (0, 1)) / 2
        assert abs(out["loss"].item() - want.item()) < 1e-5, norm
        assert abs(out["loss_token"].item() - tok.mean().item()) < 1e-5  # the logged metric is unweighted
        m.zero_grad()
        out["loss"].backward()
        g = m.speech_head.weight.grad.norm().item()
        plain.zero_grad()
        plain(b)["loss"].backward()
        assert g < 0.8 * plain.speech_head.weight.grad.norm().item()  # codes pull less
    with pytest.raises(ValueError, match="speech_loss_weight"):
        dataclasses.replace(tiny_model_cfg, speech_loss_weight=0.0).validate()


def test_speech_input_noise_corrupts_code_inputs_in_training_only(tiny_model_cfg):
    """speech_input_noise replaces code inputs (never the boundary or the input markers) at
    about its rate, in train mode only; the targets stay the clean codes."""
    import dataclasses

    cfg = dataclasses.replace(tiny_model_cfg, speech_input_noise=0.3)
    torch.manual_seed(0)
    m = build_model(cfg)
    bnd = m.speech_ids.boundary
    used = torch.arange(0, 1000, 4)  # a codec that uses 250 of the table's codes
    ids = torch.cat([used[torch.randint(0, 250, (20000,))],
                     torch.tensor([bnd, m.speech_ids.input_bos, m.speech_ids.input_eos] * 100)])
    noisy = m.noisy_codes(ids)
    changed = (noisy != ids)[:20000].float().mean().item()
    assert 0.3 * (1 - 1 / 250) - 0.02 < changed < 0.3 + 0.02
    assert torch.equal(noisy[20000:], ids[20000:])  # boundary and markers kept
    assert bool(torch.isin(noisy[:20000], used).all())  # replacements are codes of the batch

    plain = build_model(tiny_model_cfg)
    plain.load_state_dict(m.state_dict())
    b = collate([example(key="a", text=(4, 5, 6), codes=tuple(range(7, 37)))], 2048)
    inputs, labels = b.input_ids.clone(), b.labels.clone()
    m.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(m.embed_inputs(b), plain.embed_inputs(b))  # eval: no noise
        m.train()
        emb, ref = m.embed_inputs(b), plain.embed_inputs(b)
        m(b)
    diff = (emb != ref).any(-1)
    assert bool(diff.any()) and bool((b.kinds[diff] == SPEECH).all())  # only speech inputs differ
    # the noise is drawn on a copy: the batch (inputs, and so the targets) is left clean
    assert torch.equal(b.input_ids, inputs) and torch.equal(b.labels, labels)
    with pytest.raises(ValueError, match="speech_input_noise"):
        dataclasses.replace(tiny_model_cfg, speech_input_noise=1.0).validate()
