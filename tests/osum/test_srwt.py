"""SRWT parsing on crafted outputs and the alignment-shift score through bin.score."""

import json

import pytest

from osum_echat.bin.score import main as score_main
from osum_echat.eval.srwt import TimedToken, alignment_shift, parse_srwt


@pytest.mark.parametrize("text", [
    "你<0.0,0.2>好<0.2,0.5>hello<0.5,0.9>",
    "你<0.0, 0.2> 好 <0.2，0.5> hello <0.5-0.9>",
    "你<0.0s 0.2s>好<0.2~0.5>hello<0.5/0.9>",
    "你<0.0><0.2>好<0.2><0.5>hello<0.5><0.9>",
    "<0.0,0.2>你<0.2,0.5>好<0.5,0.9>hello",
])
def test_parse_variants(text):
    toks, bad = parse_srwt(text)
    assert toks == [TimedToken("你", 0.0, 0.2), TimedToken("好", 0.2, 0.5), TimedToken("hello", 0.5, 0.9)]
    assert bad == 0


def test_parse_oddities_are_counted():
    toks, bad = parse_srwt("a<0.3,0.1><0.5,0.6>b<0.6,0.8> tail")
    assert toks == [TimedToken("a", 0.1, 0.3), TimedToken("b", 0.6, 0.8)]  # reversed pair swapped
    assert bad == 2  # a pair without a token, a token without a pair
    assert parse_srwt("no times at all") == ([], 1)
    assert parse_srwt("") == ([], 0)
    multi, _ = parse_srwt("new york<0.0,0.8>")
    assert multi == [TimedToken("new york", 0.0, 0.8)]


def test_alignment_shift_matches_tokens_by_text():
    ref = [TimedToken("a", 0.0, 0.2), TimedToken("b", 0.2, 0.4), TimedToken("c", 0.4, 0.6)]
    hyp = [TimedToken("A", 0.1, 0.2), TimedToken("x", 0.2, 0.3), TimedToken("c", 0.4, 0.8)]
    total, n = alignment_shift(ref, hyp)
    assert n == 2 and total == pytest.approx(50.0 + 100.0)


def test_score_cli_srwt(tmp_path, capsys):
    (tmp_path / "ref").write_text("u1\t你<0.0,0.2>好<0.2,0.5>\nu2\thi<0.0,0.4>\n", encoding="utf-8")
    (tmp_path / "text").write_text("u1\t你<0.1,0.2>好<0.2,0.5>\n", encoding="utf-8")
    assert score_main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "text"), "--metric", "srwt"]) == 0
    s = json.loads((tmp_path / "score_srwt.json").read_text())
    assert s["aas_ms"] == pytest.approx(25.0) and s["matched"] == 2 and s["missing_hyp"] == 1
    assert "AAS 25.0 ms" in capsys.readouterr().out


def test_osum_lower_case_tags_score_like_upper_case():
    from osum_echat.eval.tags import tag_scores

    pairs = [("好<ANGER>", "好<anger>"), ("咳<COUGH>", "咳<cough>"), ("x<THROAT CLEARING>", "x<throat clearing>")]
    assert tag_scores(pairs[:1], "EMOTION")["accuracy"] == 1.0
    assert tag_scores(pairs[1:], "CAPTION")["accuracy"] == 1.0
