"""Scoring on crafted references with known error counts."""

from __future__ import annotations

import json

import pytest

from osum_echat.bin.score import main as score_main
from osum_echat.eval.score import score
from osum_echat.eval.tags import extract_tags, tag_scores
from osum_echat.eval.wer import align, error_counts, normalize_for_scoring, tokens


def test_align_counts():
    c = align(list("abcd"), list("axcde"))
    assert (c.sub, c.dele, c.ins, c.ref) == (1, 0, 1, 4)
    c = align(list("abcd"), [])
    assert (c.dele, c.rate) == (4, 1.0)
    c = align([], list("ab"))
    assert c.ins == 2
    assert align(list("kitten"), list("sitting")).errors == 3


def test_chinese_cer():
    c = error_counts("今天天气真好。", "今天天汽很好", "char")
    assert (c.sub, c.ref) == (2, 6)  # punctuation removed, per character
    assert error_counts("你好，世界！", "你好世界", "char").errors == 0


def test_english_wer():
    c = error_counts("Hello, World! How are you?", "hello world how you", "word")
    assert (c.dele, c.ref, c.errors) == (1, 5, 1)
    assert error_counts("It's fine.", "it's FINE", "word").errors == 0


def test_mixed_tokens_and_tags():
    assert tokens(normalize_for_scoring("我用iPhone拍照<HAPPY>"), "word") == ["我", "用", "iphone", "拍", "照"]
    assert extract_tags("好<HAPPY><ADULT><think>x<think end>") == ["HAPPY", "ADULT"]


def test_tag_accuracy_and_confusion():
    pairs = [("<HAPPY><ADULT>", "x<ADULT>"), ("<CHILD>", "<ADULT>"), ("<OLD>", ""), ("<YOUTH>", "<ADULT>")]
    s = tag_scores(pairs, "AGE")
    assert s["n"] == 4 and s["correct"] == 2
    assert s["confusion"]["CHILD"] == {"ADULT": 1} and s["confusion"]["OLD"] == {"NONE": 1}
    s = tag_scores([("<HAPPY><MALE>", "<MALE>")])
    assert (s["n"], s["correct"]) == (2, 1)


def test_score_cli(tmp_path, capsys):
    (tmp_path / "ref").write_text("a\t今天天气真好\nb\thello world\nc\t你好\n", encoding="utf-8")
    (tmp_path / "text").write_text("a\t今天天汽真好\nb\thello\n", encoding="utf-8")
    assert score_main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "text"), "--metric", "cer"]) == 0
    out = json.loads((tmp_path / "score_cer.json").read_text(encoding="utf-8"))
    assert out["missing_hyp"] == 1 and out["ref_tokens"] == 6 + 10 + 2
    assert out["errors"] == 1 + 5 + 2
    assert "CER" in capsys.readouterr().out
    s = score({"a": "<中立>好的"}, {"a": "<中立> 好的"}, "exact")
    assert s["accuracy"] == 1.0
    with pytest.raises(ValueError):
        score({}, {}, "bleu")
