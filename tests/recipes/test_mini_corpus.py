"""The mini recipe's corpus design: which replies depend on the speaker, that every spoken-input
chat task of one question answers with the same reply, the think string, and the age effects."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parents[2] / "recipes" / "mini" / "local"


@pytest.fixture(scope="module")
def corpus():
    sys.path.insert(0, str(LOCAL))
    try:
        yield importlib.import_module("vocab"), importlib.import_module("make_corpus")
    finally:
        sys.path.remove(str(LOCAL))


def test_reply_dependence_and_variants(corpus):
    V, M = corpus
    for lang in ("en", "zh"):
        kinds = [V.depends_on(lang, i) for i in range(len(V.questions(lang)))]
        assert kinds.count("emotion") == 4 and kinds.count("age") == 2
        for i, kind in enumerate(kinds):
            replies = {(e, a): M.answer_of(lang, i, e, a) for e in V.EMOTION_PROSODY for a in V.AGE_PROSODY}
            texts = {r[1].split(">", 1)[1] for r in replies.values()}  # without the answer-emotion tag
            variants = {r[3] for r in replies.values()}
            # the reply varies with exactly what the question depends on, and nothing else
            assert len(texts) == {"none": 1, "emotion": 3, "age": 3}[kind], (lang, i, texts)
            assert variants == ({"fixed"} if kind == "none" else
                                set(V.EMOTION_PROSODY) if kind == "emotion" else set(V.AGE_PROSODY))
            for (e, _), r in replies.items():  # the tag always names the reply's emotion
                assert r[1].startswith(f"<{V.ANSWER_EMOTION[e]}>")
    sad = M.answer_of("en", V.questions("en").index(("how are you", "how are you")), "sad", "old")
    assert sad[1] == "<安慰鼓励>cheer up i am fine thank you" and sad[2] == "cheer up i am fine thank you"
    eat = V.questions("zh").index(("我该吃什么", "wo3 gai1 chi1 shen2 me5"))
    assert M.answer_of("zh", eat, "happy", "child")[:3] == ("吃点水果喝牛奶", "<开心>吃点水果喝牛奶",
                                                             "chi1 dian3 shui3 guo3 he1 niu2 nai3")
    # the text-only tasks (no speaker) take the adult variant
    assert dict(V.qa_pairs("en"))[("what should i eat", "what should i eat")][0] == "a chicken salad"


def test_chat_tasks_share_the_reply_and_think(corpus):
    V, M = corpus
    qa = V.questions("zh").index(("你好吗", "ni3 hao3 ma5"))
    u = dict(key="u1", wav="/w/u1.wav", lang="zh", txt="你好吗", spoken="ni3 hao3 ma5", qa=qa,
             voice="m7", gender="female", age="child", emotion="sad")
    replies = {f"ans_zh_{qa:02d}_sad": {"wav": "/w/ans.wav"}}
    s2t, s2s = M.chat_records(u, replies)
    assert [r["task"] for r in s2t + s2s] == ["<S2TCHAT>", "<S2TCHAT> <THINKER>", "<S2TCHAT> <TEXT2TOKEN>",
                                              "<S2TCHAT> <TEXT2TOKEN> <THINK>"]
    assert {r["txt"] for r in s2t + s2s} == {"<安慰鼓励>别难过我很好谢谢"}
    assert all(r["extra"]["depends"] == "emotion" for r in s2t + s2s)
    think = "你好吗<CHILD><FEMALE><SAD>"
    assert [r["extra"].get("think_str") for r in s2t + s2s] == [None, think, None, think]
    assert s2s[0]["extra"]["answer_wav"] == "/w/ans.wav"


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox")
def test_age_effects_change_the_audio(corpus, tmp_path):
    """Old voices carry a deep 5 Hz tremolo: the amplitude envelope's 4-6 Hz modulation is far
    stronger than the same sentence's without it."""
    import numpy as np
    import soundfile as sf

    V, M = corpus
    assert V.AGE_EFFECTS["adult"] == [] and "tremolo" in V.AGE_EFFECTS["old"]

    def modulation(effects: list[str]) -> float:
        path = str(tmp_path / f"{len(effects)}.wav")
        M.synth((M.espeak_args("en", "m3", 50, 1.0), "one two three four five six", path, effects))
        w, sr = sf.read(path)
        assert sr == 16000
        env = np.abs(w[: len(w) // 160 * 160]).reshape(-1, 160).mean(1)  # 100 Hz envelope
        spec = np.abs(np.fft.rfft(env - env.mean())) ** 2
        f = np.fft.rfftfreq(len(env), 0.01)
        return float(spec[(f > 4.5) & (f < 5.5)].mean() / spec[(f > 0.5) & (f < 12)].mean())

    assert modulation(V.AGE_EFFECTS["old"]) > 2 * modulation([])


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox")
def test_synthesis_is_repeatable(corpus, tmp_path):
    """Two syntheses of one utterance write the same bytes (sox's dither is seeded), so a fresh
    corpus, and with it a training run of a given seed, is the same from one clone to the next."""
    _, M = corpus
    job = (M.espeak_args("en", "m3", 50, 0.8), "four six two", None, ["tremolo", "5", "85"])
    paths = [str(tmp_path / f"{i}.wav") for i in range(2)]
    for p in paths:
        M.synth((job[0], job[1], p, job[3]))
    a, b = (Path(p).read_bytes() for p in paths)
    assert len(a) > 1000 and a == b


def test_think_following_copies(corpus, tmp_path):
    """think_following.py: a speaker-dependent think record gets a copy whose think names another
    value of the attribute the reply depends on, the reply (and its audio) that follow from it,
    and a think that carries no loss; fixed replies get none."""
    import json
    import random

    V, M = corpus
    F = importlib.import_module("think_following")
    assets = tmp_path / "wav" / "assistant"
    assets.mkdir(parents=True)
    recs = []
    for qa_label, emo, age in (("你好吗", "sad", "child"), ("what should i eat", "happy", "old"),
                               ("现在几点", "neutral", "adult")):
        lang = "en" if qa_label.isascii() else "zh"
        qa = [q for q, _ in V.questions(lang)].index(qa_label)
        u = dict(key=f"u{len(recs)}", wav="/w/u.wav", lang=lang, txt=qa_label, qa=qa, gender="female",
                 age=age, emotion=emo)
        replies = {f"ans_{lang}_{qa:02d}_{v}": {"wav": str(assets / f"ans_{lang}_{qa:02d}_{v}.wav")}
                   for v in ("fixed", *V.EMOTION_PROSODY, *V.AGE_PROSODY)}
        s2t, s2s = M.chat_records(u, replies)
        recs.append((s2t[1], s2s[1]))
    rng = random.Random(0)
    for think, s2s in recs[:2]:
        for rec in (think, s2s):
            (cf,) = F.counterfactuals(rec, rng)
            ex, old = cf["extra"], rec["extra"]
            assert cf["key"] == rec["key"] + "-cf" and cf["task"] == rec["task"] and ex["think_loss"] is False
            dep = old["depends"]
            slot = "q_emotion" if dep == "emotion" else "age"
            assert ex[slot] != old[slot] and ex["counterfactual"] == {"attribute": dep, "speaker": old[slot]}
            other = "age" if slot == "q_emotion" else "q_emotion"
            assert ex[other] == old[other] and ex["gender"] == old["gender"]
            names = {**{t: k for k, t in V.EMOTION_TAG.items()}, **{t: k for k, t in V.AGE_TAG.items()}}
            lang = "en" if old["question"].isascii() else "zh"
            qa = [q for q, _ in V.questions(lang)].index(old["question"])
            _, label, _, variant = M.answer_of(lang, qa, names[ex["q_emotion"]], names[ex["age"]])
            assert cf["txt"] == label != rec["txt"]  # the reply follows the changed think
            assert ex["think_str"] == old["question"] + ex["age"] + ex["gender"] + ex["q_emotion"]
            if "answer_wav" in old:
                assert ex["answer_wav"].endswith(f"ans_{lang}_{qa:02d}_{variant}.wav")
    assert F.counterfactuals(recs[2][0], rng) == []  # the reply is fixed: nothing to follow
    # --every_other age: the age-dependent record gets one copy per other age group, the
    # emotion-dependent one still a single drawn copy
    for think, s2s in recs[:2]:
        for rec in (think, s2s):
            cfs = F.counterfactuals(rec, rng, frozenset({"age"}))
            old = rec["extra"]
            if old["depends"] == "age":
                assert [c["key"] for c in cfs] == [rec["key"] + "-cf0", rec["key"] + "-cf1"]
                assert sorted(c["extra"]["age"] for c in cfs) == sorted(set(V.AGE_TAG.values()) - {old["age"]})
                assert len({c["txt"] for c in cfs} | {rec["txt"]}) == 3  # three age groups, three replies
            else:
                assert len(cfs) == 1 and cfs[0]["extra"]["q_emotion"] != old["q_emotion"]
    # --every_value emotion,age: a copy per value, the speaker's own last (-cfr): the same reply and
    # audio as the record, its think given (no loss); so over a record's copies every reply once
    for think, s2s in recs[:2]:
        for rec in (think, s2s):
            cfs = F.counterfactuals(rec, rng, frozenset({"age"}), frozenset({"emotion", "age"}))
            old = rec["extra"]
            slot, tags = ("q_emotion", V.EMOTION_TAG) if old["depends"] == "emotion" else ("age", V.AGE_TAG)
            assert [c["key"] for c in cfs] == [rec["key"] + s for s in ("-cf0", "-cf1", "-cfr")]
            assert sorted(c["extra"][slot] for c in cfs) == sorted(tags.values())
            own = cfs[-1]
            assert own["extra"][slot] == old[slot] and own["txt"] == rec["txt"] and own["extra"]["think_loss"] is False
            assert own["extra"]["think_str"] == old["think_str"]
            assert own["extra"].get("answer_wav") == old.get("answer_wav")
            assert len({c["txt"] for c in cfs}) == 3
            # the other copies are --every_other's, and the attribute not named keeps its drawn copy
            assert cfs[:2] == F.counterfactuals(rec, rng, frozenset({old["depends"]}))
            if old["depends"] == "emotion":
                assert len(F.counterfactuals(rec, rng, frozenset(), frozenset({"age"}))) == 1
    # the CLI writes both lists; a reply without audio is refused
    train = tmp_path / "data" / "train"
    train.mkdir(parents=True)
    for name, col in (("think.jsonl", 0), ("s2sthink.nocodes.jsonl", 1)):
        (train / name).write_text("".join(json.dumps(r[col], ensure_ascii=False) + "\n" for r in recs))
    with pytest.raises(SystemExit, match="no reply audio"):
        F.main(["--data_dir", str(tmp_path / "data")])
    for v in ("fixed", *V.EMOTION_PROSODY, *V.AGE_PROSODY):
        for lang in ("en", "zh"):
            for qa in range(len(V.questions(lang))):
                (assets / f"ans_{lang}_{qa:02d}_{v}.wav").touch()
    F.main(["--data_dir", str(tmp_path / "data")])
    for name in ("think_cf.jsonl", "s2sthink_cf.nocodes.jsonl"):
        lines = (train / name).read_text().splitlines()
        assert len(lines) == 2 and all(json.loads(x)["extra"]["think_loss"] is False for x in lines)
    F.main(["--data_dir", str(tmp_path / "data"), "--every_other", "age"])
    for name in ("think_cf.jsonl", "s2sthink_cf.nocodes.jsonl"):
        assert len((train / name).read_text().splitlines()) == 3  # 1 (emotion) + 2 (age)
    F.main(["--data_dir", str(tmp_path / "data"), "--every_other", "age", "--every_value", "emotion,age"])
    for name in ("think_cf.jsonl", "s2sthink_cf.nocodes.jsonl"):
        lines = [json.loads(x) for x in (train / name).read_text().splitlines()]
        assert len(lines) == 6 and sum(x["key"].endswith("-cfr") for x in lines) == 2  # 3 (emotion) + 3 (age)
    with pytest.raises(SystemExit, match="attributes are"):
        F.main(["--data_dir", str(tmp_path / "data"), "--every_other", "gender"])
    with pytest.raises(SystemExit, match="--every_value 'gender'"):
        F.main(["--data_dir", str(tmp_path / "data"), "--every_value", "gender,"])


def test_think_following_is_opt_in(corpus, tmp_path):
    """write_data_yamls.py adds the think-following copies to stage 3 only when asked."""
    W = importlib.import_module("write_data_yamls")
    plain, with_cf = W.stage_entries(tmp_path), W.stage_entries(tmp_path, think_following=True)
    assert "think_following" not in plain["3"] and plain["2"] == with_cf["2"]
    assert with_cf["3"]["think_following"]["path"].endswith("train/think_cf.jsonl")
    assert with_cf["3"]["s2s_think_following"]["family"] == "s2s"
    # listed twice as often as the real think records of their family
    assert with_cf["3"]["think_following"]["weight"] == 2 * plain["3"]["think_chat"]["weight"]
    assert with_cf["3"]["s2s_think_following"]["weight"] == 2 * plain["3"]["s2s_think"]["weight"]
    assert {k: v for k, v in with_cf["3"].items() if "following" not in k} == plain["3"]
    # run.sh passes --think_following_weights 8,3 (three copies per record since round 16)
    w83 = W.stage_entries(tmp_path, think_following=True, think_following_weights=(8, 3))
    assert (w83["3"]["think_following"]["weight"], w83["3"]["s2s_think_following"]["weight"]) == (8, 3)
    assert {k: v for k, v in w83["3"].items() if "following" not in k} == plain["3"]
    assert all(w83[s] == with_cf[s] for s in ("1_asr", "1", "2"))


def test_think_following_weights_cli(corpus, tmp_path):
    """write_data_yamls.py --think_following_weights S2T,S2S reaches stage 3's YAML; a malformed or
    non-positive pair stops it before any list is written."""
    import yaml

    W = importlib.import_module("write_data_yamls")
    out = tmp_path / "lists"
    W.main(["--data_dir", str(tmp_path), "--out_dir", str(out), "--think_following",
            "--think_following_weights", "8,3"])
    s3 = yaml.safe_load((out / "stage3.yaml").read_text())
    assert (s3["think_following"]["weight"], s3["s2s_think_following"]["weight"]) == (8, 3)
    for bad in ("8", "8,0", "a,3", "8,3,1", "nan,3"):
        with pytest.raises(SystemExit, match="two weights > 0"):
            W.main(["--data_dir", str(tmp_path), "--out_dir", str(tmp_path / "bad"), "--think_following",
                    "--think_following_weights", bad])
        assert not (tmp_path / "bad" / "stage3.yaml").exists()


def test_stage3_weights(corpus, tmp_path):
    """--stage3_weights NAME=W,... sets those entries' weights in stage 3's YAML and nowhere else;
    a name stage 3 does not list, a malformed pair, a repeated name or a weight that is not > 0
    stops write_data_yamls.py before any list is written."""
    import yaml

    W = importlib.import_module("write_data_yamls")
    plain = W.stage_entries(tmp_path, think_following=True)
    got = W.stage_entries(tmp_path, think_following=True, stage3_weights={"spoken_chat": 8, "s2s": 2.5})
    assert (got["3"]["spoken_chat"]["weight"], got["3"]["s2s"]["weight"]) == (8, 2.5)
    assert got["3"]["spoken_chat"]["path"] == plain["3"]["spoken_chat"]["path"]
    assert {k: v for k, v in got["3"].items() if k not in ("spoken_chat", "s2s")} == \
        {k: v for k, v in plain["3"].items() if k not in ("spoken_chat", "s2s")}
    assert all(got[s] == plain[s] for s in ("1_asr", "1", "2"))
    assert plain["2"]["spoken_chat"]["weight"] == 4 and plain["2"]["s2s"]["weight"] == 1  # stage 2 untouched
    assert W.parse_weights(" spoken_chat=8, s2s=2 ") == {"spoken_chat": 8, "s2s": 2}
    assert isinstance(W.parse_weights("s2s=2.0")["s2s"], int) and W.parse_weights("") == {}
    out = tmp_path / "lists"
    W.main(["--data_dir", str(tmp_path), "--out_dir", str(out), "--think_following",
            "--stage3_weights", "spoken_chat=8,s2s_think_following=5"])
    s2, s3 = (yaml.safe_load((out / f"stage{n}.yaml").read_text()) for n in (2, 3))
    assert (s3["spoken_chat"]["weight"], s3["s2s_think_following"]["weight"], s2["spoken_chat"]["weight"]) == (8, 5, 4)
    assert "weight: 8\n" in (out / "stage3.yaml").read_text()  # an integer weight stays one
    # checked before the first file: with --digit_weight the digit strings' list (whose source is
    # missing here) would otherwise be read and fail first, with another message
    bad_dir = ["--data_dir", str(tmp_path), "--out_dir", str(tmp_path / "bad"), "--digit_weight", "3"]
    with pytest.raises(SystemExit, match="stage 3 lists no 'think_following'"):
        W.main([*bad_dir, "--stage3_weights", "think_following=2"])
    for bad in ("spoken_chat", "spoken_chat=0", "=3", "s2s=x", "s2s=-1", "s2s=inf", "s2s=nan", "s2s=1,s2s=2"):
        with pytest.raises(SystemExit, match="NAME=W pairs"):
            W.main([*bad_dir, "--stage3_weights", bad])
    assert list((tmp_path / "bad").iterdir()) == []


def test_tokenizer_ignores_think_following_copies(corpus, tmp_path):
    """The copies repeat the corpus's strings; the tokenizer's training text is the same with or
    without them (so --think_following does not change the tokenizer)."""
    import json

    T = importlib.import_module("train_tokenizer")
    train = tmp_path / "train"
    train.mkdir()
    rec = {"key": "a-think", "txt": "<开心>great good morning to you",
           "extra": {"think_str": "good morning<ADULT><MALE><HAPPY>", "question": "good morning"}}
    (train / "think.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n")
    before = T.corpus_texts(tmp_path)
    assert "good morning<ADULT><MALE><HAPPY>" in before
    cf = dict(rec, key="a-think-cf", txt="<安慰鼓励>cheer up good morning to you",
              extra=dict(rec["extra"], think_str="good morning<ADULT><MALE><SAD>", think_loss=False,
                         counterfactual={"attribute": "emotion", "speaker": "<HAPPY>"}))
    (train / "think_cf.jsonl").write_text(json.dumps(cf, ensure_ascii=False) + "\n")
    assert T.corpus_texts(tmp_path) == before


def test_digit_strings_are_found_and_replayed(corpus, tmp_path):
    """write_data_yamls.py lists the random digit strings of train/asr.jsonl (both languages, no
    command or number phrase) and, when asked (--digit_weight W), weights them x W from the stage-1
    mixture on (not in the warm-up)."""
    import json
    import random

    V, _ = corpus
    W = importlib.import_module("write_data_yamls")
    rng = random.Random(0)
    labels = [V.random_sentence(lang, rng)[0] for lang in ("en", "zh") for _ in range(300)]
    digits = [s for s in labels if V.is_digit_string(s)]
    assert 0.15 < len(digits) / len(labels) < 0.35  # the 25 % digit-string share of random_sentence
    assert not any(V.is_digit_string(s) for s in ("turn to channel five", "定时五分钟", "one two", "四六二一三五",
                                                   "ten one two", "what time is it"))
    assert V.is_digit_string("zero four nine") and V.is_digit_string("零四九")
    train = tmp_path / "data" / "train"
    train.mkdir(parents=True)
    recs = [{"key": f"u{i}-asr", "wav": f"/w/u{i}.wav", "task": "<TRANSCRIBE>", "txt": s} for i, s in enumerate(labels)]
    (train / "asr.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    lists = tmp_path / "lists"
    lists.mkdir()
    assert W.write_digit_strings(tmp_path / "data", lists) == len(digits)
    kept = [json.loads(x) for x in (lists / W.DIGITS).read_text().splitlines()]
    assert [r["txt"] for r in kept] == digits and all(r["task"] == "<TRANSCRIBE>" for r in kept)
    assert all("asr_digits" not in v for v in W.stage_entries(tmp_path / "data", lists=lists).values())
    entries = W.stage_entries(tmp_path / "data", lists=lists, digit_weight=3)
    assert "asr_digits" not in entries["1_asr"]
    for stage in ("1", "2", "3"):
        assert entries[stage]["asr_digits"] == {"path": str(lists / W.DIGITS), "weight": 3, "family": "s2t"}
    (train / "asr.jsonl").write_text(json.dumps(recs[0] | {"txt": "open the door"}) + "\n")
    with pytest.raises(SystemExit, match="no digit-string"):
        W.write_digit_strings(tmp_path / "data", lists)
    (train / "asr.jsonl").write_text("{not json\n")
    with pytest.raises(SystemExit, match=r"asr.jsonl:1"):
        W.write_digit_strings(tmp_path / "data", lists)
    (train / "asr.jsonl").write_text(json.dumps({"key": "u0", "text": "four six two"}) + "\n")
    with pytest.raises(SystemExit, match="record 1 is not an ASR record"):
        W.write_digit_strings(tmp_path / "data", lists)


def test_warmup_age_records_are_opt_in(corpus, tmp_path):
    """--warmup_age lists the <TRANSCRIBE> <AGE> <GENDER> records of train/s2t.jsonl (and only
    those) in the stage-1 ASR warm-up; the mixture and stages 2-3 stay as they are."""
    import json

    import yaml

    W = importlib.import_module("write_data_yamls")
    train = tmp_path / "data" / "train"
    train.mkdir(parents=True)
    u = {"key": "u0", "wav": "/w/u0.wav", "txt": "open the door", "lang": "en",
         "gender": "female", "age": "old", "emotion": "sad"}
    _, C = corpus
    recs = C.tag_records(u)
    (train / "s2t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    lists = tmp_path / "lists"
    lists.mkdir()
    assert W.write_age_tags(tmp_path / "data", lists) == 1
    kept = [json.loads(x) for x in (lists / W.AGE_TAGS).read_text().splitlines()]
    assert kept == [r for r in recs if r["task"] == "<TRANSCRIBE> <AGE> <GENDER>"]
    assert kept[0]["txt"] == "open the door<OLD><FEMALE>"
    plain = W.stage_entries(tmp_path / "data", lists=lists)
    aged = W.stage_entries(tmp_path / "data", lists=lists, warmup_age=True)
    assert "age_tags" not in plain["1_asr"]
    assert aged["1_asr"]["age_tags"] == {"path": str(lists / W.AGE_TAGS), "weight": 1, "family": "s2t"}
    assert {k: v for k, v in aged["1_asr"].items() if k != "age_tags"} == plain["1_asr"]
    assert all(aged[s] == plain[s] for s in ("1", "2", "3"))
    twice = W.stage_entries(tmp_path / "data", lists=lists, warmup_age=True, warmup_age_weight=2)
    assert twice["1_asr"]["age_tags"]["weight"] == 2
    assert {k: v for k, v in twice.items() if k != "1_asr"} == {k: v for k, v in aged.items() if k != "1_asr"}
    assert "age_tags" not in W.stage_entries(tmp_path / "data", lists=lists, warmup_age_weight=2)["1_asr"]
    # the CLI (run.sh passes --warmup_age --warmup_age_weight 2): the weight reaches the warm-up's YAML
    W.main(["--data_dir", str(tmp_path / "data"), "--out_dir", str(lists), "--warmup_age", "--warmup_age_weight", "2"])
    assert yaml.safe_load((lists / "stage1_asr.yaml").read_text())["age_tags"]["weight"] == 2
    assert "age_tags" not in yaml.safe_load((lists / "stage1.yaml").read_text())
    with pytest.raises(SystemExit, match="--warmup_age_weight 0.0: must be > 0"):
        W.main(["--data_dir", str(tmp_path / "data"), "--out_dir", str(lists), "--warmup_age", "--warmup_age_weight", "0"])
    (train / "s2t.jsonl").write_text(json.dumps(recs[0]) + "\n")
    with pytest.raises(SystemExit, match="no <TRANSCRIBE> <AGE> <GENDER> records"):
        W.write_age_tags(tmp_path / "data", lists)
    (train / "s2t.jsonl").write_text("{not json\n")
    with pytest.raises(SystemExit, match=r"s2t.jsonl:1"):
        W.write_age_tags(tmp_path / "data", lists)


def test_given_reply_copies(corpus, tmp_path):
    """--given_reply: one copy of every S2S record speaking another reply of its language (words
    differ), with that reply's codes and wav, the text given (extra.text_loss false); listed in
    stages 2-3 only; the same file for the same input; bad input refused by file:line."""
    import json
    import random

    W = importlib.import_module("write_data_yamls")
    V, M = corpus
    train = tmp_path / "data" / "train"
    train.mkdir(parents=True)
    rng, recs, codes = random.Random(0), [], {}
    for i in range(40):
        lang = "en" if i % 2 else "zh"
        qa = rng.randrange(len(V.questions(lang)))
        emo, age = rng.choice(list(V.EMOTION_PROSODY)), rng.choice(list(V.AGE_PROSODY))
        u = dict(key=f"u{i}", wav=f"/w/u{i}.wav", lang=lang, txt=V.questions(lang)[qa][0], spoken="", qa=qa,
                 voice="m7", gender="male", age=age, emotion=emo)
        replies = {f"ans_{lang}_{qa:02d}_{v}": {"wav": f"/w/ans_{lang}_{qa:02d}_{v}.wav"}
                   for v in ("fixed", *V.EMOTION_PROSODY, *V.AGE_PROSODY)}
        s2s = M.chat_records(u, replies)[1][0]
        words = s2s["txt"].split(">", 1)[1]
        s2s["extra"]["speech_token"] = codes.setdefault(words, [len(codes), 7, len(codes)])
        recs.append(s2s)
    (train / "s2s.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    lists = tmp_path / "lists"
    lists.mkdir()
    assert W.write_given_replies(tmp_path / "data", lists) == 40
    text = (lists / W.GIVEN_REPLY).read_text()
    copies = [json.loads(x) for x in text.splitlines()]
    by_label = {r["txt"]: r for r in recs}
    for rec, cp in zip(recs, copies):
        assert cp["key"] == rec["key"] + "-given" and cp["task"] == rec["task"] and cp["wav"] == rec["wav"]
        own, new = rec["txt"].split(">", 1)[1], cp["txt"].split(">", 1)[1]
        assert new != own and new.isascii() == own.isascii()  # another reply, same language
        ex = cp["extra"]
        assert ex["text_loss"] is False and ex["given_reply"] == {"speaker_reply": rec["txt"]}
        assert ex["speech_token"] == codes[new] and ex["answer_wav"] == by_label[cp["txt"]]["extra"]["answer_wav"]
        assert {k: v for k, v in ex.items() if k not in ("speech_token", "answer_wav", "text_loss", "given_reply")} \
            == {k: v for k, v in rec["extra"].items() if k not in ("speech_token", "answer_wav")}
    assert any(c["extra"]["question"] == by_label[c["txt"]]["extra"]["question"] for c in copies)  # variants drawn
    W.write_given_replies(tmp_path / "data", lists)
    assert (lists / W.GIVEN_REPLY).read_text() == text
    plain = W.stage_entries(tmp_path / "data", lists=lists)
    given = W.stage_entries(tmp_path / "data", lists=lists, given_reply=1.5)
    for s in ("2", "3"):
        assert given[s]["s2s_given_reply"] == {"path": str(lists / W.GIVEN_REPLY), "weight": 1.5, "family": "s2s"}
        assert {k: v for k, v in given[s].items() if k != "s2s_given_reply"} == plain[s]
    assert all(given[s] == plain[s] for s in ("1_asr", "1"))
    bad = dict(recs[1], extra={k: v for k, v in recs[1]["extra"].items() if k != "speech_token"})
    (train / "s2s.jsonl").write_text(json.dumps(recs[0]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(SystemExit, match=r"s2s.jsonl:2: not an S2S record"):
        W.write_given_replies(tmp_path / "data", lists)
    (train / "s2s.jsonl").write_text(json.dumps(recs[0]) + "\n[1, 2]\n")  # JSON, but not a record
    with pytest.raises(SystemExit, match=r"s2s.jsonl:2: not an S2S record"):
        W.write_given_replies(tmp_path / "data", lists)
    (train / "s2s.jsonl").write_text(json.dumps(recs[0]) + "\n")
    with pytest.raises(SystemExit, match="no other reply in its language"):
        W.write_given_replies(tmp_path / "data", lists)


def test_think_probe_scores_following(corpus):
    """think_probe.py: the reply each think calls for, the other think, and 'follows its own
    think' (a reply that follows a wrong think counts, a think naming nothing does not)."""
    P = importlib.import_module("think_probe")
    rec = {"key": "u-s2sthink", "extra": {"question": "你好吗", "q_emotion": "<SAD>", "age": "<OLD>",
                                          "gender": "<MALE>", "depends": "emotion"}}
    assert P.wanted_reply(rec, "sad", "old") == "别难过我很好谢谢"
    assert P.wanted_reply(rec, "neutral", "old") == "我很好谢谢"
    assert P.think_attributes("你好吗<OLD><MALE><HAPPY>") == ("happy", "old")
    assert P.think_attributes("你好吗") == (None, None)
    import random
    for seed in range(5):  # the attribute the reply depends on changes, the other one stays
        emo, age = P.other_think(rec, random.Random(seed))
        assert emo != "sad" and age == "old"
        emo, age = P.other_think(dict(rec, extra=dict(rec["extra"], depends="age")), random.Random(seed))
        assert emo == "sad" and age != "old"
    recs = [dict(rec, key=f"{k}-s2sthink") for k in "abc"]
    think = {"a-s2sthink": "你好吗<OLD><MALE><HAPPY>", "b-s2sthink": "你好吗<OLD><MALE><SAD>", "c-s2sthink": "你好吗"}
    text = {"a-s2sthink": "太好了我很好谢谢", "b-s2sthink": "我很好谢谢", "c-s2sthink": "我很好谢谢"}
    got = P.follows_own(recs, think, text)
    assert got["n"] == 3 and abs(got["accuracy"] - 1 / 3) < 1e-9  # a: follows (wrong) think; b: not; c: no think


def test_think_probe_forces_the_think(corpus, tiny_tokenizer):
    """The probe's processor makes a (random) model begin its reply with the forced think."""
    P = importlib.import_module("think_probe")
    sys.path.insert(0, str(LOCAL.parents[2] / "tests" / "generate"))
    try:
        from gen_helpers import make_bot
    finally:
        sys.path.remove(str(LOCAL.parents[2] / "tests" / "generate"))
    from osum_echat.text.tokenizer import encode

    bot = make_bot(tiny_tokenizer, ["generate.max_new_tokens=24"])
    req = bot.request(bot.sample("t2t", text="hello world"))
    ids = encode(bot.tok, "<think>hello world<think end>")
    forced = bot.decoder.generate([req], processors=[P.force_processor({req.key: ids})])[0]
    assert forced.think == "hello world"
    plain = bot.decoder.generate([bot.request(bot.sample("t2t", text="hello world"))])[0]
    assert plain.think != "hello world"  # a random model does not write that think by itself


def _bot_with_tags(corpus):
    """A random tiny model whose tokenizer has the mini recipe's tags as single tokens."""
    V, _ = corpus
    from osum_echat.text.build_tokenizer import train_bpe_tokenizer

    sys.path.insert(0, str(LOCAL.parents[2] / "tests" / "generate"))
    try:
        from gen_helpers import make_bot
    finally:
        sys.path.remove(str(LOCAL.parents[2] / "tests" / "generate"))
    text = ["hello world how are you today", "今天天气真好我们去公园吧", "turn up the volume", "我很好谢谢"] * 5
    tok = train_bpe_tokenizer(text, vocab_size=300, extra_tokens=[*V.TAGS, "<think>", "<think end>"])
    return make_bot(tok, ["generate.max_new_tokens=8"]), tok


def test_tag_probe_scores_the_labels(corpus):
    """tag_probe.py: the first-step logits of the task's labels, as the head gives them (the
    config's sampling, repetition penalty and age forcing do not touch them)."""
    import torch

    V, _ = corpus
    P = importlib.import_module("tag_probe")
    bot, tok = _bot_with_tags(corpus)
    ids = P.label_ids(tok, V.AGE_TAG)
    assert sorted(ids.values()) == sorted(V.AGE_TAG.values())
    with pytest.raises(SystemExit, match="tokens of this tokenizer"):  # a label of several tokens
        P.label_ids(tok, {"x": "<NOT_A_TAG_AT_ALL>"})
    g = torch.Generator().manual_seed(0)
    samples = [bot.sample("age", amp * torch.randn(n, generator=g), key=f"u{i}")  # lengths differ: left padding
               for i, (amp, n) in enumerate([(0.01, 8000), (0.3, 16000), (0.9, 24000)])]
    reqs = [P.probe_request(bot, s) for s in samples]
    assert all(r.policy.greedy and not r.speech_out for r in reqs)
    assert not bot.request(samples[0]).policy.greedy  # the tiny config samples: the probe does not
    cols = list(ids)
    scores = P.label_scores(bot, reqs, {r.key: cols for r in reqs})
    # the same logits straight from the model: prefill of each prompt alone, the text head
    for r, row in zip(reqs, scores):
        emb, _, pos = bot.decoder._prefill_inputs([r])
        with torch.inference_mode():
            h = bot.decoder.body(inputs_embeds=emb, position_ids=pos).last_hidden_state[:, -1]
            want = torch.nn.functional.linear(h, bot.model.lm_head_weight)[0, cols]
        assert torch.allclose(torch.tensor(row), want, atol=1e-4), (row, want)
    assert max(abs(a - b) for a, b in zip(scores[0], scores[2])) > 1e-3  # rows are told apart


def test_tag_probe_calibrated_choice(corpus):
    """The calibrated choice takes each label's mean logit off: a constant preference that
    makes every raw choice the same label cancels, what varies with the input decides."""
    P = importlib.import_module("tag_probe")
    scores = [[5.0 + d, 0.0 - d] for d in (0.3, -0.2, 0.1, -0.4)]  # label 0 always ahead by ~5
    raw, cal = P.choices(scores)
    assert raw == [0, 0, 0, 0]
    assert cal == [0, 1, 0, 1]
    assert P.choices([[1.0, 2.0, 0.0]]) == ([1], [0])  # one row: every centred logit is 0, the first wins


def test_check_learning_voice_test(corpus):
    """check_learning.py's test (3): an attribute above its most frequent label, at p < 0.001 / k."""
    C = importlib.import_module("check_learning")
    assert C.binomial_tail(0, 10, 0.3) == 1.0
    assert abs(C.binomial_tail(10, 10, 0.5) - 0.5 ** 10) < 1e-15
    assert abs(C.binomial_tail(9, 10, 0.5) - 11 / 1024) < 1e-12

    def res(gender, age=0.3, emotion=0.33):
        return {"gender_choice": {"n": 90, "accuracy": 0.5, "calibrated": gender, "majority": 0.522},
                "age_choice": {"n": 90, "accuracy": 0.3, "calibrated": age, "majority": 0.367},
                "emotion_choice": {"n": 90, "accuracy": 0.3, "calibrated": emotion, "majority": 0.344}}

    # the quick runs of README item 53: models that read the gender, one that did not
    assert C.reads_the_voice(C.voice_tests(res(0.911))) and C.reads_the_voice(C.voice_tests(res(0.75)))
    assert not C.reads_the_voice(C.voice_tests(res(0.422)))
    assert not C.reads_the_voice(C.voice_tests(res(0.60)))  # above the majority, but not significantly
    assert C.reads_the_voice(C.voice_tests(res(0.5, age=0.6)))  # any one attribute will do
    assert not C.reads_the_voice(C.voice_tests(res(0.567, age=0.333, emotion=0.444)))  # the random model
    assert C.voice_tests({"gender_tag": {"accuracy": 1.0}}) == []  # no probe results: the older test applies


def test_check_learning_modes(corpus, tmp_path, monkeypatch):
    """check_learning.py end to end on a made-up experiment: the ASR comparison fails a full run
    but only is reported in a quick one; the voice test fails both when no attribute is read."""
    import json

    C = importlib.import_module("check_learning")
    exp = tmp_path / "exp"
    for name, recs in (("stage1_asr", [{"loss": 7.0}]), ("stage1", [{"loss": 3.0}, {"cv": {"all": {"loss": 3.5}}}])):
        (exp / name).mkdir(parents=True)
        (exp / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    choice = {"n": 90, "accuracy": 0.5, "calibrated": 0.9, "majority": 0.522}
    trained = {"asr_cer": {"cer": 23.4}, "gender_choice": choice}
    for name, res in (("trained", trained), ("untrained", {"asr_cer": {"cer": 22.4}})):
        (exp / "eval" / name).mkdir(parents=True)
        (exp / "eval" / name / "results.json").write_text(json.dumps(res))

    def run(mode):
        monkeypatch.setattr(sys, "argv", ["check_learning.py", "--exp", str(exp), "--mode", mode,
                                          "--out", str(exp / "results.md")])
        with pytest.raises(SystemExit) as e:
            C.main()
        return e.value.code, json.loads((exp / "results.json").read_text())

    code, out = run("quick")
    assert code == 0 and out["pass"] and "ASR CER" in out["notes"][0]
    code, out = run("full")
    assert code == 1 and "ASR CER" in out["failures"][0]
    choice["calibrated"] = 0.55  # gender not read: the voice test fails a quick run too
    (exp / "eval" / "trained" / "results.json").write_text(json.dumps(trained))
    code, out = run("quick")
    assert code == 1 and "no attribute read from the voice" in out["failures"][0]


def test_append_times_section(corpus, tmp_path):
    """append_times.py: the latest line of each step in first-seen order, the total, the host's
    CPU and instruction sets; a second call replaces the section instead of adding one; a
    malformed line is refused with its line number."""
    A = importlib.import_module("append_times")
    times, res = tmp_path / "times.tsv", tmp_path / "results.md"
    # a rerun of stage 3 with other steps replaces its line (the step count is the detail, not the name)
    times.write_text("0 data\t21\t2026-12-03T19:00:40\t\n4 stage 3\t100\tT1\t600 steps\n\n"
                     "4 stage 3\t95\tT2\t700 steps\n5 eval\t74\tT3\t\n")
    assert A.read_times(times) == [("0 data", 21.0, "2026-12-03T19:00:40"), ("4 stage 3 (700 steps)", 95.0, "T2"),
                                   ("5 eval", 74.0, "T3")]
    res.write_text("| metric | value |\n\nPASS: the model learned\n")
    A.main(["--times", str(times), "--results", str(res)])
    A.main(["--times", str(times), "--results", str(res)])
    text = res.read_text()
    assert text.startswith("| metric | value |") and text.count(A.MARK) == 1 and text.count("## Time") == 1
    assert "| 4 stage 3 (700 steps) | 1 min 35 s | T2 |" in text and "600 steps" not in text
    assert "| total of these steps | 3 min 10 s | - |" in text  # 21 + 95 + 74
    info = "model name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu avx2 avx512f amx_bf16\n"
    host = A.host_line(info)
    assert host.startswith("Some CPU @ 2.0GHz;") and "AVX2, AVX-512, AMX-BF16" in host
    assert "AVX512-BF16" not in host and "no AVX2" in A.host_line("model name : Old CPU\nflags : sse2\n")
    times.write_text("0 data\t21\n")
    with pytest.raises(ValueError, match=r"times.tsv:1: expected"):
        A.read_times(times)
    times.write_text("0 data\tfast\tT\t\n")
    with pytest.raises(ValueError, match="is not a number"):
        A.read_times(times)
