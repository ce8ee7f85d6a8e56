"""Rule scorers on hand-computed cases."""

from __future__ import annotations

import pytest

from osum_echat.eval import bbh, ifeval, mcq
from osum_echat.eval.asr import asr_errors, pool_rates, text_language
from osum_echat.eval.judges import parse_score, parse_yes_no
from osum_echat.eval.labels import canonical, named_labels, think_names_reference
from osum_echat.eval.refusal import is_refusal, refusal_rate
from osum_echat.eval.timestamps import timestamp_error


def test_asr_language_aware_normalisation():
    # Chinese by character, punctuation dropped: 今天天气好 vs 今天天汽好 -> 1 sub of 5
    r = asr_errors("今天天气好！", "今天天汽好")
    assert (r["lang"], r["unit"], r["errors"], r["ref_tokens"]) == ("zh", "char", 1, 5)
    # English by word, case and punctuation ignored, apostrophes kept: 1 sub (dont vs don't) of 4
    r = asr_errors("I don't know, Bob.", "i dont know bob")
    assert (r["lang"], r["unit"], r["errors"], r["ref_tokens"]) == ("en", "word", 1, 4)
    # tags are not words; mixed text uses CJK chars + Latin words
    assert asr_errors("hello<HAPPY>", "hello")["errors"] == 0
    assert text_language("我用 iPhone") == "mixed" and asr_errors("我用 iPhone", "我用 iphone")["ref_tokens"] == 3
    pooled = pool_rates([asr_errors("今天天气好", "今天天汽好"), asr_errors("a b", "a")])
    assert pooled["cer"]["rate"] == pytest.approx(0.2) and pooled["wer"]["rate"] == pytest.approx(0.5)
    assert pooled["mer"]["rate"] == pytest.approx(2 / 7)


def test_mcq_extraction():
    assert mcq.extract_choice("The answer is C.") == "C"
    assert mcq.extract_choice("答案是B") == "B"
    assert mcq.extract_choice("d) the mitochondria") == "D"
    assert mcq.extract_choice("I would choose option A because") == "A"
    assert mcq.extract_choice("no idea") is None
    s = mcq.score_choice("no idea", "B", "k1")
    assert not s["parsed"] and s == mcq.score_choice("no idea", "B", "k1")  # seeded guess: reproducible
    assert mcq.score_choice("The correct answer is b, since", "B", "k")["correct"]


def test_bbh_extraction():
    assert bbh.extract("The answer is (B).", "hyperbaton_1") == 1
    assert bbh.extract("a", "hyperbaton_2") == 0
    assert bbh.extract("No, you do not return to the starting point.", "navigate_1") == 0
    assert bbh.extract("Yes.", "navigate_1") == 1
    assert bbh.extract("The sentence is not plausible.", "sports_understanding_4") == 0
    assert bbh.extract("Jim tells the truth.", "web_of_lies_2") == 1
    assert bbh.extract("hmm", "navigate_1") is None
    assert bbh.score_bbh("Yes", "yes", "navigate_1")["correct"]
    with pytest.raises(ValueError, match="no known subtask"):
        bbh.extract("yes", "dyck_languages_1")


def test_refusal_detection():
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("   ")  # empty reply counts as a refusal
    assert is_refusal("这是违法的")
    assert not is_refusal("Sure, here is how to bake bread.")
    assert refusal_rate(["Sorry.", "Sure thing."]) == 50.0
    # case-sensitive, as the official scorer: "sorry" alone is no marker, "Sorry" is
    assert not is_refusal("sorry to hear that, here are the steps") and is_refusal("Sorry, no.")


@pytest.mark.parametrize("iid,kw,reply,strict,loose", [
    ("punctuation:no_comma", {}, "no commas here", True, True),
    ("punctuation:no_comma", {}, "one, two", False, False),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "two words", True, True),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "two words", False, False),
    ("keywords:existence", {"keywords": ["Paris", "river"]}, "Paris has a river.", True, True),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "a badge is fine", True, True),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "cat cat", True, True),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "less than"}, "zoo", True, True),
    ("change_case:english_lowercase", {}, "all lower", True, True),
    ("change_case:english_capital", {}, "ALL CAPS", True, True),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "THE BIG dog", True, True),
    ("startend:quotation", {}, '"quoted"', True, True),
    ("startend:end_checker", {"end_phrase": "Any questions?"}, "Done. Any questions?", True, True),
    ("detectable_format:title", {}, "<<My Title>> text", True, True),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True, True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", True, True),
    ("detectable_format:constrained_response", {}, "My answer is yes.", True, True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "a *key* point", True, True),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\na\nSection 2\nb", True, True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[name] at [address]", True, True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "hi\nP.S. bye", True, True),
    ("combination:two_responses", {}, "one******two", True, True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "Say hi. hi", True, True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "a\n***\nb", True, True),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"}, "One. Two.", False, False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"}, "first\n\nThen more", True, True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "hi\np. p. s. more", True, True),
    ("combination:two_responses", {}, "one******two******", True, True),
    ("combination:two_responses", {}, "same****** same", False, False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"}, "a\n\nThen, more", True, True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two\n** bold", True, True),
    # loose: a leading line (e.g. "Sure:") is forgiven, strict is not
    ("change_case:english_lowercase", {}, "Sure:\nall lower", False, True),
])
def test_ifeval_instructions(iid, kw, reply, strict, loose):
    r = ifeval.check_item(reply, [iid], [kw])
    assert (r["strict"], r["loose"]) == ([strict], [loose])


def test_ifeval_unknown_and_aggregate():
    assert ifeval.check_item("x", ["language:response_language"], [{"language": "en"}])["unknown"]
    # a missing argument (IFEval would draw a random one) makes the item unscorable, not failed
    assert ifeval.check_item("x", ["keywords:existence"], [{"keywords": None}])["unknown"]
    assert ifeval.check_item("<1>all lower", ["change_case:english_lowercase"], [{}])["strict"] == [True]
    rows = [{"strict": [True, False], "loose": [True, True], "unknown": []},
            {"strict": [True], "loose": [True], "unknown": []}]
    agg = ifeval.aggregate(rows)
    assert agg["strict_prompt"] == 50.0 and agg["strict_instruction"] == pytest.approx(200 / 3)
    assert agg["loose_prompt"] == 100.0 and agg["final"] == pytest.approx((50 + 200 / 3 + 100 + 100) / 4)


def test_think_label_parsing_tag_and_language_styles():
    assert named_labels("<think>用户是<OLD><FEMALE>语气<SAD><think end>")["emotion"] == {"sad"}
    assert named_labels("a sad old female user asks")["gender"] == {"female"}  # 'female' is not 'male'
    assert named_labels("老年女性用户语气开心")["age"] == {"old"}
    assert named_labels("the woman laughs")["gender"] == {"female"}
    assert think_names_reference("a happy child male user", {"emotion": "HAPPY", "age": "<CHILD>"}) == \
        {"emotion": True, "age": True}
    assert think_names_reference("a happy or sad user", {"emotion": "happy"}) == {"emotion": False}
    assert canonical("age", "MIDDLE_AGE") == "adult" and canonical("gender", "女") == "female"


def test_timestamps_and_judge_parsing():
    r = timestamp_error("<0>a<4> <5>b<9>", "<1>a<4> <5>b<8>")
    assert r["pairs"] == 4 and r["aas_ms"] == pytest.approx(50.0)
    assert parse_score("4") == 4 and parse_score("Score: 5") == 5 and parse_score("**3**") == 3
    assert parse_score("I think 4") is None and parse_score("7") is None and parse_score("") is None
    assert parse_yes_no("Yes.") is True and parse_yes_no("maybe") is None
