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
