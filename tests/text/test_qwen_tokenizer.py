"""``build_qwen_tokenizer`` equals Qwen2.5's tokenizer in size, added-token ids and flags."""

from __future__ import annotations

from osum_echat.text.tokenizer import SpecialIds, encode, load_tokenizer

# Qwen2.5's added tokens (tokenizer_config.json ``added_tokens_decoder``): id -> (content, special)
QWEN25 = {
    151643: ("<|endoftext|>", True), 151644: ("<|im_start|>", True), 151645: ("<|im_end|>", True),
    151646: ("<|object_ref_start|>", True), 151647: ("<|object_ref_end|>", True),
    151648: ("<|box_start|>", True), 151649: ("<|box_end|>", True), 151650: ("<|quad_start|>", True),
    151651: ("<|quad_end|>", True), 151652: ("<|vision_start|>", True), 151653: ("<|vision_end|>", True),
    151654: ("<|vision_pad|>", True), 151655: ("<|image_pad|>", True), 151656: ("<|video_pad|>", True),
    151657: ("<tool_call>", False), 151658: ("</tool_call>", False), 151659: ("<|fim_prefix|>", False),
    151660: ("<|fim_middle|>", False), 151661: ("<|fim_suffix|>", False), 151662: ("<|fim_pad|>", False),
    151663: ("<|repo_name|>", False), 151664: ("<|file_sep|>", False),
}


def _added(tok) -> dict[int, tuple[str, bool]]:
    return {i: (a.content, a.special) for i, a in tok.added_tokens_decoder.items()}


def test_size_ids_and_flags_equal_qwen25(qwen_tokenizer, tmp_path):
    tok = qwen_tokenizer
    assert len(tok) == 151665
    assert _added(tok) == QWEN25
    for i, (content, _) in QWEN25.items():
        assert tok.convert_tokens_to_ids(content) == i
        assert encode(tok, f"a{content}b") == [64, i, 65]  # matched whole inside text
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<|endoftext|>", "<|im_end|>", None)
    assert sorted(tok.all_special_ids) == [i for i, (_, special) in QWEN25.items() if special]
    # special tokens are dropped by skip_special_tokens, the tool/fim ones are not
    assert tok.decode([151657, 87, 151658, 151654, 151645], skip_special_tokens=True) == "<tool_call>x</tool_call>"
    ids = SpecialIds.from_tokenizer(tok, 151936)
    assert (ids.endoftext, ids.im_start, ids.im_end) == (151643, 151644, 151645)
    tok.save_pretrained(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert len(again) == 151665 and _added(again) == QWEN25


def test_upstream_pad(qwen_tokenizer):
    from osum_echat.text.build_tokenizer import build_qwen_tokenizer

    tok = build_qwen_tokenizer(upstream_pad=True)
    assert len(tok) == 151666 and tok.pad_token == "[PAD]" and tok.pad_token_id == 151665
    assert _added(tok) == {**QWEN25, 151665: ("[PAD]", True)}
    text = "<|im_start|>user\n你好<|im_end|>\n"
    assert encode(tok, text) == encode(qwen_tokenizer, text)
