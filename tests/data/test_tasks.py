"""TaskSpec layouts, golden ids, think styles, unknown-tag holes, history, streaming."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import itertools
import random

import pytest
import torch
from data_helpers import data_cfg

from osum_echat.data.loader import build_renderer
from osum_echat.data.render import DropSample, Renderer
from osum_echat.data.sample import HistoryItem, Sample
from osum_echat.data.tasks import (
    CATALOGUE,
    build_history_segments,
    get_spec,
    rewrite_task,
)
from osum_echat.model.batch import (
    Example,
    SpeechInSegment,
    SpeechOutSegment,
    TextSegment,
    collate,
)
from osum_echat.text import prompts as P

FEATS = torch.randn(64, 80)


def _sample(task, txt="<开心>那真是太好了", **extra):
    ex = {"speech_token": list(range(100)), "think_str": "用户很开心", "question": "我考试通过了"}
    ex.update(extra)
    return Sample(key="k", txt=txt, task=task, extra=ex, feats=FEATS)


def _kinds(segs):
    out = []
    for g in segs:
        if isinstance(g, SpeechInSegment):
            out.append("SP")
        elif isinstance(g, SpeechOutSegment):
            out.append("Z*" if g.supervised else "Z")
        else:
            out.append("T*" if g.supervised else "T")
    return out


@pytest.fixture(scope="module")
def rend(tiny_tok):
    return build_renderer(data_cfg(), tiny_tok)


LAYOUTS = {
    "text": ["T", "T", "SP", "T", "T*"],
    "s2t_chat": ["T", "SP", "T", "T*"], "s2t_chat_think": ["T", "SP", "T", "T*"],
    "s2t_chat_fake": ["T", "SP", "T", "T*"],
    "text2text": ["T", "T", "T", "T*"],
    "speech2text_token": ["T", "SP", "T", "T*", "Z*"],
    "speech2text_token_think": ["T", "SP", "T", "T*", "Z*"],
    "speech2text_token_history": ["T", "SP", "T", "T*", "Z*"],
    "text2token": ["T", "T", "T", "Z*"],
}


@pytest.mark.parametrize("task", sorted(CATALOGUE))
def test_every_spec_layout(task, rend):
    spec = get_spec(task)
    segs = spec.build(_sample(task), rend, random.Random(0))
    kinds = _kinds(segs)
    if spec.streaming:
        head = kinds[:kinds.index("T*")]
        assert head == (["T", "SP", "T"] if spec.speech_in else ["T", "T", "T"])
        body = kinds[len(head):]
        assert body[0] == "T*" and set(body) <= {"T*", "Z*"}
        assert all(a != b for a, b in itertools.pairwise(body))  # alternating
    else:
        assert kinds == LAYOUTS[spec.output_type], task
    assert segs[0].ids[:len(rend.system(spec.system))] == rend.system(spec.system)
    prefix = spec.build(_sample(task), rend, random.Random(0), with_target=False)
    assert prefix[-1].ids == rend.assistant_start
    assert all(not getattr(g, "supervised", False) for g in prefix)
    n = len(prefix)  # inference prompt == training prefix
    assert [getattr(g, "ids", None) for g in segs[:n]] == [getattr(g, "ids", None) for g in prefix]
    ex_batch = collate([__import__("osum_echat.model.batch", fromlist=["Example"]).Example(segs)],
                       text_vocab_size=len(rend.tok))
    assert ex_batch.num_targets > 0


def test_golden_tiny(rend, tiny_tok):
    spec = get_spec("<S2TCHAT> <TEXT2TOKEN>")
    segs = spec.build(_sample("<S2TCHAT> <TEXT2TOKEN>"), rend, random.Random(0))
    enc = lambda t: tiny_tok(t, add_special_tokens=False)["input_ids"]
    assert segs[0].ids == enc(P.system_block("s2s") + P.USER_START)
    assert segs[2].ids == enc(P.ASSISTANT_START)
    im_end = tiny_tok.convert_tokens_to_ids(P.IM_END)
    assert segs[3].ids == enc("那真是太好了") + [im_end]  # language style: emotion tag dropped
    assert segs[4].ids == [4096] + list(range(100)) + [4096]


def test_golden_qwen(qwen_tok):
    r = Renderer(qwen_tok)
    sizes = {"s2s": 47, "s2s_think": 74, "s2t_chat": 42, "s2t_think": 64, "t2t": 35,
             "understand": 39, "tts": 30, "qwen_default": 21}
    for key, n in sizes.items():
        assert len(r.system(key)) == n, key
    assert r.user_start == [151644, 872, 198]
    assert r.assistant_start == [151645, 198, 151644, 77091, 198]
    assert r.encode("<think>") == [13708, 766, 29] and r.encode("<think end>") == [13708, 766, 835, 29]
    ids, holes = r.label("年龄为:<&&>,好")
    assert ids[-1] == 151645
    assert [ids[h] for h in holes] == [7672]  # only the '&&' inside the brackets
    assert ids.count(7672) == 1
    ids2, holes2 = r.label("x<&&><&&>")
    assert len(holes2) == 2 and all(ids2[h] == 7672 for h in holes2)


def test_unknown_tag_holes_tiny(rend):
    ids, holes = rend.label("a:<&&>,b")
    text = rend.tok.decode([ids[h] for h in holes])
    assert text == "&&"
    seg = TextSegment(ids, supervised=True, no_loss=holes)
    from osum_echat.model.batch import Example

    b = collate([Example([TextSegment([1, 2]), seg])], text_vocab_size=len(rend.tok))
    assert b.num_targets == len(ids) - len(holes)


def test_language_think(rend):
    spec = get_spec("<S2TCHAT> <THINKER>")
    text = spec.label_text(_sample(spec.name), rend, random.Random(0))
    assert text == "<think>用户很开心<think end>那真是太好了"
    with pytest.raises(DropSample) as e:
        spec.label_text(_sample(spec.name, think_str=""), rend, random.Random(0))
    assert e.value.reason == "missing_think"


@pytest.mark.parametrize("task", ["<S2TCHAT> <THINKER>", "<S2TCHAT> <TEXT2TOKEN> <THINK>"])
@pytest.mark.parametrize("flag", [False, "false"])
def test_given_think_has_no_loss(tiny_tokenizer, task, flag):
    """extra.think_loss false: the think's tokens carry no loss, the markers and the answer do
    (a tokenizer with the think markers as tokens, like the mini recipe's)."""
    rend = build_renderer(data_cfg(), tiny_tokenizer)
    spec = get_spec(task)
    learnt = spec.build(_sample(task), rend, random.Random(0))
    given = spec.build(_sample(task, think_loss=flag), rend, random.Random(0))
    (lt,), (gt,) = [[g for g in segs if isinstance(g, TextSegment) and g.supervised] for segs in (learnt, given)]
    assert gt.ids == lt.ids and lt.no_loss == ()
    assert rend.tok.decode([gt.ids[h] for h in gt.no_loss]) == "用户很开心"
    free = set(gt.no_loss)
    kept = rend.tok.decode([i for j, i in enumerate(gt.ids) if j not in free])
    assert kept.startswith("<think><think end>") and "那真是太好了" in kept
    assert spec.think_given(_sample(task, think_loss=flag)) and not spec.think_given(_sample(task))
    assert not spec.think_given(_sample(task, think_loss=True))
    from osum_echat.model.batch import Example

    nb = [collate([Example(segs)], text_vocab_size=len(rend.tok)).num_targets for segs in (learnt, given)]
    assert nb[0] - nb[1] == len(gt.no_loss) > 0


@pytest.mark.parametrize("task", ["<S2TCHAT> <TEXT2TOKEN>", "<S2TCHAT> <TEXT2TOKEN> <THINK>",
                                  "<S2TCHAT> <TEXT2TOKEN> <STREAMING>"])
@pytest.mark.parametrize("flag", [False, "no"])
def test_given_text_has_no_loss(rend, task, flag):
    """extra.text_loss false on a speech-output task: the reply text (think and end included)
    carries no loss, the speech codes keep theirs; the ids are unchanged."""
    spec = get_spec(task)
    learnt = spec.build(_sample(task), rend, random.Random(0))
    given = spec.build(_sample(task, text_loss=flag), rend, random.Random(0))
    assert [type(g) for g in given] == [type(g) for g in learnt]
    for lg, gg in zip(learnt, given):
        if isinstance(gg, TextSegment) and gg.supervised:
            assert gg.ids == lg.ids and gg.no_loss == tuple(range(len(gg.ids))) and lg.no_loss == ()
        elif isinstance(gg, SpeechOutSegment):
            assert gg.supervised and gg.ids == lg.ids
    n_codes = sum(len(g.ids) for g in given if isinstance(g, SpeechOutSegment))
    nb = [collate([Example(segs)], text_vocab_size=len(rend.tok)).num_targets for segs in (learnt, given)]
    assert nb[1] == n_codes < nb[0]
    assert spec.text_given(_sample(task, text_loss=flag)) and not spec.text_given(_sample(task, text_loss=True))


def test_given_text_without_speech(rend):
    """A text-only task with extra.text_loss false is dropped with its reason (nothing left to
    learn); TTS reads its text as input, so the flag changes nothing there."""
    with pytest.raises(DropSample) as e:
        get_spec("<S2TCHAT>").build(_sample("<S2TCHAT>", text_loss=False), rend, random.Random(0))
    assert e.value.reason == "text_loss_without_speech"
    tts = get_spec("<TEXT2TOKEN>")
    a, b = (tts.build(_sample("<TEXT2TOKEN>", **x), rend, random.Random(0)) for x in ({}, {"text_loss": False}))
    assert _kinds(a) == _kinds(b) and all(getattr(x, "no_loss", ()) == getattr(y, "no_loss", ()) for x, y in zip(a, b))


def test_given_think_ignored_without_think(rend):
    spec = get_spec("<S2TCHAT>")
    assert not spec.think_given(_sample("<S2TCHAT>", think_loss=False))
    segs = spec.build(_sample("<S2TCHAT>", think_loss=False), rend, random.Random(0))
    assert all(g.no_loss == () for g in segs if isinstance(g, TextSegment))


def test_given_think_span_slow_path(tiny_tokenizer):
    """Without offsets (a slow tokenizer) the span's pieces are tokenised apart."""
    rend = build_renderer(data_cfg(), tiny_tokenizer)
    text = "<think>abc def<think end>xyz"
    span = Renderer.given_think_span(text)
    assert span == ((7, 14),)
    fast = rend._fast
    try:
        rend._fast = False
        ids, holes = rend.label(text, span)
    finally:
        rend._fast = fast
    assert rend.tok.decode([ids[h] for h in holes]) == "abc def"
    assert Renderer.given_think_span("no think here") == ()


def test_tag_think_template(tiny_tok):
    cfg = data_cfg()
    r = build_renderer(cfg, tiny_tok, think_style="tag")
    spec = get_spec("<S2TCHAT> <TEXT2TOKEN> <THINK>")
    s = _sample(spec.name, age="ADULT", gender="<FEMALE>")
    r.unknown_rate = 1.0
    text = spec.label_text(s, r, random.Random(0))
    assert text == ("<think>用户说的话是:我考试通过了,年龄为:<ADULT>,性别为:<FEMALE>,情感为:<&&>,"
                    "声音事件为:<&&>,推测使用的回复情感为:<开心>,"
                    "我应该综合用户的语义和副语言信息给出专业且对应的回答<think end><开心>那真是太好了")
    r.unknown_rate = 0.0
    text = spec.label_text(_sample(spec.name, txt="没事的"), r, random.Random(0))
    assert "情感为:<NEUTRAL>,声音事件为:<OTHER>" in text and "年龄为:<ADULT>,性别为:<MALE>" in text
    assert text.endswith("<think end><中立>没事的")


def test_understanding_labels_keep_tags(rend):
    s = Sample(key="k", txt="<HAPPY>", task="<TRANSCRIBE> <EMOTION>", feats=FEATS)
    task = rewrite_task(s, random.Random(0), only_x_rate=1.0)
    assert task == "<EMOTION>" and s.txt == "<HAPPY>"
    assert get_spec(task).label_text(s, rend, random.Random(0)) == "<HAPPY>"  # not emptied
    s = Sample(key="k", txt="你好<开始回答>你好呀", task="<TRANSCRIBE> <S2TCHAT>")
    assert rewrite_task(s, random.Random(0), only_x_rate=1.0) == "<S2TCHAT>" and s.txt == "你好呀"
    s = Sample(key="k", txt="Hello World", task="<TRANSCRIBE>")
    assert get_spec("<TRANSCRIBE>").label_text(s, rend, random.Random(0)) == "hello world"


def test_instruction_sources(rend):
    spec = get_spec("<TRANSCRIBE>")
    s = _sample("<TRANSCRIBE>", question="THE TRANSCRIPT")  # question must not become the prompt
    segs = spec.build(s, rend, random.Random(0))
    assert rend.tok.decode(segs[1].ids) in rend.instructions["<TRANSCRIBE>"]
    s2 = _sample("<TRANSCRIBE>", instruction="say it")
    assert rend.tok.decode(spec.build(s2, rend, random.Random(0))[1].ids) == "say it"
    t2t = get_spec("<TEXT2TEXT>").build(_sample("<TEXT2TEXT>"), rend, random.Random(0))
    assert rend.tok.decode(t2t[1].ids) == "我考试通过了"
    chat = get_spec("<S2TCHAT>").build(_sample("<S2TCHAT>"), rend, random.Random(0))
    assert len(chat) == 4  # no instruction for chat tasks


def test_unknown_task(rend):
    with pytest.raises(DropSample) as e:
        get_spec("<NOPE>")
    assert e.value.reason == "unknown_task"
    assert get_spec("<NOPE>", unknown="understand").output_type == "text"
    assert get_spec("TEXT2TOKEN").name == "<TEXT2TOKEN>"
    assert get_spec("<S2TCHAT>   <TEXT2TOKEN> <EMOTION>").name == "<S2TCHAT> <TEXT2TOKEN>"


def test_history_layout(rend):
    turns = [HistoryItem(index=1, text="<think>x<think end>第一句回复", codes=[5, 6], feats=torch.randn(40, 80)),
             HistoryItem(index=2, text="第二句", feats=torch.randn(30, 80))]
    segs = build_history_segments(turns, rend)
    assert _kinds(segs) == ["T", "SP", "T", "T", "Z", "T", "T", "SP", "T", "T", "T"]
    assert segs[0].ids == rend.user_start and segs[2].ids == rend.assistant_start
    assert segs[3].ids == rend.encode("第一句回复") + [rend.ids.im_end]
    assert segs[4].ids == [4096, 5, 6, 4096] and segs[5].ids == rend.newline
    s = _sample("<S2TCHAT> <TEXT2TOKEN> <HISTORY>")
    s.history = turns
    full = get_spec(s.task).build(s, rend, random.Random(0))
    assert full[0].ids == rend.system("s2s")  # SYS block alone, then the past turns
    tail = _kinds(full)[1 + len(segs):]
    assert tail == ["T", "SP", "T", "T*", "Z*"]
    assert full[1 + len(segs)].ids == rend.user_start


def test_streaming_interleave(rend):
    spec = get_spec("<S2TCHAT> <TEXT2TOKEN> <STREAMING>")
    segs = spec.build(_sample(spec.name, txt="hello world, how are you today? i am fine",
                              speech_token=list(range(200))), rend, random.Random(0))
    body = segs[3:]
    texts = [g for g in body if isinstance(g, TextSegment)]
    speech = [g for g in body if isinstance(g, SpeechOutSegment)]
    assert len(texts) >= 2 and len(texts) == len(speech)
    assert all(len(g.ids) == 6 for g in texts[:-1]) and all(len(g.ids) == 18 for g in speech[:-1])
    assert sum(len(g.ids) for g in speech) == 202 and speech[-1].ids[-1] == 4096
    assert texts[-1].ids[-1] == rend.ids.im_end
    with pytest.raises(DropSample) as e:
        spec.build(_sample(spec.name, txt="好" * 30, speech_token=list(range(10))), rend, random.Random(0))
    assert e.value.reason == "speech_text_ratio"


def test_golden_qwen_fake_shard_lengths(qwen_tok, upstream_fake):
    """Lengths upstream's model saw for its sample shard (same texts, 10.96 s, 421 codes; see
    docs/upstream_compat.md, "Baselines"): S2S row = system+user 50, speech 137 + 2 markers,
    assistant 5, label 47, speech 423 -> 664; ASR label 12."""
    from data_helpers import data_cfg

    from osum_echat.data.drops import DropCounter
    from osum_echat.data.pipeline import StageContext, sample_stages
    from osum_echat.data.sources import iter_unit
    from osum_echat.model.batch import Example, example_length

    cfg = data_cfg()
    ctx = StageContext(cfg=cfg, renderer=build_renderer(cfg, qwen_tok), train=False)
    s = next(iter_unit(f"-|{upstream_fake}/shard/shards_000000000.tar", "0", {}, DropCounter()))
    question = s.extra["question"]
    s.task = "<S2TCHAT> <TEXT2TOKEN>"
    ex = next(sample_stages(iter([s]), ctx))
    sizes = [len(g.ids) if hasattr(g, "ids") else int(g.feats.shape[0]) for g in ex.segments]
    assert sizes == [50, 1096, 5, 47, 423]
    assert example_length(Example(ex.segments)) == 664
    asr = Sample(key="a", txt=question, task="<TRANSCRIBE>", feats=FEATS)
    ids, _ = ctx.renderer.label(get_spec("<TRANSCRIBE>").label_text(asr, ctx.renderer, random.Random(0)))
    assert len(ids) == 12 and len(ctx.renderer.system("understand") + ctx.renderer.user_start) == 42
