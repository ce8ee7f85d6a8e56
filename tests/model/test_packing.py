"""Padding-free (varlen) rows for flash-attention: the layout, and the model's varlen path run
through a reference varlen attention (per-sequence causal attention) on CPU, equal to the SDPA
block-diagonal path and to each example run alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from osum_echat.model.batch import PAD, Example, SpeechInSegment, SpeechOutSegment, TextSegment, collate
from osum_echat.model.build import build_model
from osum_echat.model.packing import varlen_layout

REF = "osum_reference_varlen"


def reference_varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """What flash_attn_varlen_func computes: causal attention inside each [cu[j], cu[j+1]) span
    of a single flattened row, nothing across spans. q (1, Hq, N, D), k/v (1, Hkv, N, D)."""
    cu = kwargs["cu_seq_lens_q"]
    assert query.shape[0] == 1 and torch.equal(cu, kwargs["cu_seq_lens_k"])
    assert int(kwargs["max_length_q"]) == int((cu[1:] - cu[:-1]).max())
    groups = query.shape[1] // key.shape[1]
    k, v = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    out = torch.empty_like(query)
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        out[:, :, s:e] = F.scaled_dot_product_attention(query[:, :, s:e], k[:, :, s:e], v[:, :, s:e],
                                                        is_causal=True, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def register_reference() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(REF, reference_varlen_attention)
    AttentionMaskInterface.register(REF, flash_attention_mask)


def example(key: str, frames: int, n_text: int, n_codes: int, seed: int) -> Example:
    g = torch.Generator().manual_seed(seed)
    segs = [TextSegment([5, 6, 7]), SpeechInSegment(torch.randn(frames, 80, generator=g)),
            TextSegment(list(range(10, 10 + n_text)), supervised=True)]
    if n_codes:
        segs.append(SpeechOutSegment([4096, *range(n_codes), 4096], supervised=True))
    return Example(segs, key=key)


def examples() -> list[Example]:
    return [example("a", 120, 5, 6, 0), example("b", 60, 3, 0, 1), example("c", 90, 7, 4, 2),
            example("d", 40, 2, 3, 3), example("e", 70, 4, 0, 4)]


def test_varlen_layout_drops_padding_and_splits_examples():
    batch = collate(examples(), 2048, pack_max_tokens=70)
    lay = varlen_layout(batch.kinds, batch.position_ids)
    assert batch.kinds.shape[0] >= 2 and bool((batch.kinds == PAD).any())  # several rows, padding
    assert lay.index.numel() == int((batch.kinds != PAD).sum())
    lengths = (lay.cu_seqlens[1:] - lay.cu_seqlens[:-1]).tolist()
    by_row = sorted(batch.spans)
    assert lengths == [e - s for _, s, e in by_row]  # one sequence per example, in layout order
    assert lay.max_len == max(lengths) and lay.cu_seqlens.dtype == torch.int32
    # position ids restart at every sequence and count up inside it
    pos = lay.position_ids[0]
    for s, e in zip(lay.cu_seqlens[:-1].tolist(), lay.cu_seqlens[1:].tolist()):
        assert pos[s:e].tolist() == list(range(e - s))


def test_varlen_path_equals_sdpa_block_diagonal_and_single_examples(tiny_model_cfg):
    register_reference()
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg).eval()
    assert not model.varlen_attention  # sdpa config
    exs = examples()
    packed = collate(exs, 2048, pack_max_tokens=70)
    with torch.no_grad():
        sdpa = model.hidden_states(packed)
        model.llama_model.set_attn_implementation(REF)
        model.varlen_attention = True
        varlen = model.hidden_states(packed)
        real = packed.kinds != PAD
        assert torch.allclose(varlen[real], sdpa[real], atol=1e-5)
        assert bool((varlen[~real] == 0).all())
        for i, (r, s, e) in enumerate(packed.spans):  # each example alone, same numbers
            by_key = {ex.key: ex for ex in exs}
            alone = model.hidden_states(collate([by_key[packed.keys[i]]], 2048))
            assert torch.allclose(varlen[r, s:e], alone[0], atol=1e-5)
        loss_varlen = model(packed)["loss"]
        model.llama_model.set_attn_implementation("sdpa")
        model.varlen_attention = False
        assert torch.allclose(loss_varlen, model(packed)["loss"], atol=1e-5)


def test_varlen_path_trains(tiny_model_cfg):
    """Gradients flow through the padding-free path (the packed row is the training case)."""
    register_reference()
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg).train()
    batch = collate(examples(), 2048, pack_max_tokens=70)
    model.llama_model.set_attn_implementation(REF)
    model.varlen_attention = True
    model(batch)["loss"].backward()
    grads = [p.grad for p in model.llama_model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
