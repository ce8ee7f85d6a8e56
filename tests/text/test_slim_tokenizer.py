"""``SlimTokenizer`` (tiktoken) gives the ids and texts of the HF tokenizer it is read from."""

from __future__ import annotations

import json
import random

import pytest

from osum_echat.text.slim_tokenizer import SlimTokenizer
from osum_echat.text.tokenizer import encode

TEXTS = [
    "hello world, how are you today?", "今天天气真好，我们去公园吧。", "<think>用户很开心<think end>",
    "年龄为:<CHILD>", "  leading   spaces\n\n\ttabs\r\nand\u00a0nbsp ", "it's they'll WE'RE I'M",
    "numbers 1234567 3.14159 -42", "emoji 😀👍🏽 and é, ß, ñ, 한국어, العربية", "a<|im_end|>b<|im_start|>c",
    "<|endoftext|><tool_call>x</tool_call><|fim_prefix|>", "", " ", "\n", "ÿ\x00\x7f control",
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from osum_echat.text.build_tokenizer import build_qwen_tokenizer, find_qwen_tiktoken

    if find_qwen_tiktoken() is None:
        pytest.skip("the real Qwen BPE needs `pip install --no-deps dashscope==2.0.2`")
    folder = tmp_path_factory.mktemp("qwen_tok")
    hf = build_qwen_tokenizer(out_dir=folder)
    return hf, SlimTokenizer.from_folder(folder)


@pytest.fixture(scope="module", params=["from_folder", "from_tiktoken"])
def slim_of(request, pair):
    from osum_echat.text.build_tokenizer import build_qwen_slim_tokenizer

    return pair[0], (pair[1] if request.param == "from_folder" else build_qwen_slim_tokenizer())


def test_encode_decode_equal_hf(slim_of):
    hf, slim = slim_of
    assert len(slim) == len(hf)
    rng = random.Random(0)
    texts = TEXTS + ["".join(rng.choice(TEXTS)[rng.randrange(8):] for _ in range(4)) for _ in range(50)]
    for text in texts:
        ids = encode(hf, text)
        assert encode(slim, text) == ids, text
        for skip in (False, True):
            assert slim.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
    # arbitrary id sequences, split UTF-8 included (replacement characters as HF)
    for _ in range(50):
        ids = [rng.randrange(len(hf)) for _ in range(rng.randrange(1, 12))]
        for skip in (False, True):
            assert slim.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
    for tok in ("<|im_end|>", "<|endoftext|>", "<tool_call>", "Ġhello", "hello", "not-a-token-xyz"):
        want = hf.convert_tokens_to_ids(tok)
        assert slim.convert_tokens_to_ids(tok) == (None if want == hf.unk_token_id else want)


def test_other_algorithms_are_refused(tmp_path):
    from osum_echat.text.build_tokenizer import train_bpe_tokenizer

    train_bpe_tokenizer(["你好呀姐妹 hello"] * 10, vocab_size=300, out_dir=tmp_path / "cjk", split_cjk=True)
    with pytest.raises(ValueError, match="tiktoken"):
        SlimTokenizer.from_folder(tmp_path / "cjk")
    train_bpe_tokenizer(["hello world"] * 10, vocab_size=300, out_dir=tmp_path / "plain")
    spec = json.loads((tmp_path / "plain" / "tokenizer.json").read_text())
    spec["model"]["merges"] = spec["model"]["merges"][::-1]
    spec["model"]["ignore_merges"] = True
    (tmp_path / "plain" / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="merge order|tiktoken"):
        SlimTokenizer.from_folder(tmp_path / "plain")
