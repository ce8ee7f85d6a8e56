import pytest

from osum_echat.text import prompts
from osum_echat.text.normalize import normalize_label, split_leading_tag
from osum_echat.text.tokenizer import OfflineModelError, SpecialIds, encode, load_tokenizer, resolve_hf_folder

# Token counts of each system block (without the user start) with the Qwen2.5 BPE,
# as upstream's (docs/upstream_compat.md, "Prompts"): a check that the strings are byte-exact.
SYSTEM_TOKENS = {"s2s": 47, "s2s_think": 74, "s2t_chat": 42, "s2t_think": 64, "t2t": 35,
                 "understand": 39, "tts": 30, "qwen_default": 21}


def test_system_prompts_match_released_token_counts(qwen_tokenizer):
    for key, n in SYSTEM_TOKENS.items():
        assert len(encode(qwen_tokenizer, prompts.system_block(key))) == n, key


def test_chatml_pieces_and_special_ids_with_real_qwen(qwen_tokenizer):
    ids = SpecialIds.from_tokenizer(qwen_tokenizer, 151936)
    assert (ids.endoftext, ids.im_start, ids.im_end) == (151643, 151644, 151645)
    assert encode(qwen_tokenizer, prompts.USER_START) == [151644, 872, 198]
    assert encode(qwen_tokenizer, prompts.ASSISTANT_START) == [151645, 198, 151644, 77091, 198]
    assert encode(qwen_tokenizer, "<think end>") == [13708, 766, 835, 29]
    assert encode(qwen_tokenizer, "年龄为:<CHILD") == [102185, 17714, 31252, 99119]


def test_tiny_tokenizer_has_the_specials_and_round_trips(tiny_tokenizer, tmp_path):
    ids = SpecialIds.from_tokenizer(tiny_tokenizer)
    assert ids.im_end == tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert encode(tiny_tokenizer, "<|im_start|>user\n")[0] == ids.im_start
    text = "hello 你好 <think>x<think end>"
    assert tiny_tokenizer.decode(encode(tiny_tokenizer, text)) == text
    tiny_tokenizer.save_pretrained(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert encode(again, text) == encode(tiny_tokenizer, text)
    with pytest.raises(ValueError, match="text vocab size"):
        SpecialIds.from_tokenizer(tiny_tokenizer, 10)


def test_split_cjk_keeps_one_token_per_chinese_character(tmp_path):
    from osum_echat.text.build_tokenizer import train_bpe_tokenizer

    texts = ["今天天气怎么样", "今天星期几 what is the weather like", "我很喜欢音乐"] * 50
    merged = train_bpe_tokenizer(texts, 400)
    split = train_bpe_tokenizer(texts, 400, tmp_path, split_cjk=True)
    assert len(merged.tokenize("今天天气怎么样")) == 1  # the default merges the whole phrase
    assert len(split.tokenize("今天天气怎么样")) == 7
    assert split.tokenize(" weather") == merged.tokenize(" weather") == ["Ġweather"]
    again = load_tokenizer(str(tmp_path))  # the pre-tokeniser is saved with the tokenizer
    assert again.decode(encode(again, "今天 what")) == "今天 what"
    assert len(again.tokenize("今天")) == 2


def test_hub_id_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineModelError, match="local folder"):
        resolve_hf_folder("Qwen/definitely-not-cached-model-xyz")
    with pytest.raises(FileNotFoundError):
        resolve_hf_folder("/nonexistent/folder/for/test")


def test_label_normalisation():
    assert normalize_label("好 <HAPPY> <ADULT>") == "好<HAPPY><ADULT>"
    assert normalize_label("今天 天气\n真好") == "今天天气真好"
    assert normalize_label("I Am Fine", "<TRANSCRIBE>") == "i am fine"
    assert normalize_label("I Am Fine", "<TRANSCRIBE> <EMOTION>") == "I Am Fine"
    assert "<think end>" in normalize_label("<think> a <think end> b")
    assert split_leading_tag("<开心> 真好") == ("开心", "真好")
    assert split_leading_tag("真好") == (None, "真好")


def test_think_wrap_and_split():
    s = prompts.wrap_think("reason", "answer")
    assert s == "<think>reason<think end>answer"
    assert prompts.split_think(s) == ("reason", "answer")
    assert prompts.split_think("plain") == ("", "plain")
    with pytest.raises(KeyError, match="unknown system prompt"):
        prompts.system_block("nope")
