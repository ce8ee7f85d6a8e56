"""Decode loop: tasks end to end, KV cache vs full recompute, phases, stops, processors,
batching, streaming, sessions (tiny random model, CPU)."""

from __future__ import annotations

import threading

import pytest
import torch
from gen_helpers import make_bot

from osum_echat.generate.decoder import SPEECH, TEXT, RowState
from osum_echat.generate.processors import AgeForcing, ngram_banned
from osum_echat.generate.config import NGramBlockConfig
from osum_echat.model.batch import SpeechInSegment, SpeechOutSegment, TextSegment
from osum_echat.text.normalize import normalize_label

GREEDY = [f"generate.{p}.greedy=true" for p in ("understand", "s2t_chat", "tts", "t2t", "s2s")]


@pytest.fixture(scope="module")
def gbot(tiny_tokenizer):
    return make_bot(tiny_tokenizer, GREEDY + ["generate.max_new_tokens=16"])


def check_reply(r, bot, speech: bool):
    assert isinstance(r.text, str) and isinstance(r.think, str)
    assert all(0 <= c < bot.decoder.boundary for c in r.speech_codes)
    assert all(0 <= t < bot.model.text_vocab_size for t in r.text_ids)
    assert r.stop_reason in ("text_end", "speech_end", "max_tokens", "interrupted")
    assert r.timings["prefill_ms"] > 0 and r.timings["new_tokens"] >= 1
    if not speech:
        assert r.speech_codes == []


def test_every_task_runs(gbot, wav, force_im_end):
    b = gbot
    check_reply(b.asr(wav), b, False)
    check_reply(b.understand(wav, "what is the emotion?", task="<EMOTION>"), b, False)
    check_reply(b.chat(wav), b, False)
    check_reply(b.chat(wav, think=True), b, False)
    check_reply(b.text_chat("hello world"), b, False)
    tts = b.speak("hello world")
    check_reply(tts, b, True)
    assert tts.text == "" and tts.speech_codes
    for think in (False, True):
        r = b.s2s(wav, think=think, processors=[force_im_end])
        check_reply(r, b, True)
        assert len(r.text_ids) == 3 and r.speech_codes


def test_tag_think_style_runs(tiny_tokenizer, wav, force_im_end):
    b = make_bot(tiny_tokenizer, GREEDY + ["generate.max_new_tokens=12", "text.think_style=tag"])
    check_reply(b.s2s(wav, think=True, processors=[force_im_end]), b, True)


def _reference_tokens(bot, req, processors, n):
    """Greedy tokens by recomputing the whole sequence without a cache at every step."""
    dec = bot.decoder
    emb, mask, _ = dec._prefill_inputs([req])
    st = RowState(req, SPEECH if req.start_in_speech else TEXT, None, boundaries=int(req.start_in_speech))
    toks, seq = [], emb
    with torch.no_grad():
        for _ in range(n):
            h = dec.body(inputs_embeds=seq, use_cache=False).last_hidden_state[:, -1]
            logits = dec._logits([st], h)[0]
            phase = st.phase
            tok = int(torch.argmax(dec._process(st, logits, processors)))
            dec._accept(st, tok)
            toks.append((tok, phase))
            if st.done:
                break
            seq = torch.cat([seq, dec._embed_step([phase], [tok])], dim=1)
    return toks


@pytest.mark.parametrize("task", ["s2s", "tts", "t2t"])
def test_kv_cache_equals_full_recompute(gbot, wav, force_im_end, task):
    text = None if task == "s2s" else "hello world"
    req = gbot.request(gbot.sample(task, wav if task == "s2s" else None, text))
    procs = [force_im_end] if task == "s2s" else []
    timings = {}
    got = [(t, p) for step in gbot.decoder.steps([req], processors=procs, timings=timings) for _, t, p in step]
    ref = _reference_tokens(gbot, req, procs, len(got))
    assert got == ref


def test_phase_switch_s2s(gbot, wav, force_im_end):
    req = gbot.request(gbot.sample("s2s", wav))
    timings = {}
    steps = [x for step in gbot.decoder.steps([req], processors=[force_im_end], timings=timings) for x in step]
    im_end = gbot.decoder.ids.im_end
    phases = [p for _, _, p in steps]
    assert phases[:4] == [TEXT] * 4 and steps[3][1] == im_end
    assert all(p == SPEECH for p in phases[4:]) and len(phases) > 4
    assert steps[4][1] == gbot.decoder.boundary  # opening boundary is forced
    r = gbot.decoder.reply_of(timings["states"][0], timings)
    assert len(r.text_ids) == 3  # no off-by-one: all 3 text tokens kept


def test_stop_rules(gbot, wav, force_im_end):
    dec = gbot.decoder
    boundary = dec.boundary

    def close_after_5(state, logits):
        if state.phase == SPEECH and len(state.speech_ids) == 6:
            out = torch.full_like(logits, float("-inf"))
            out[boundary] = 0.0
            return out
        if state.phase == SPEECH and state.boundaries >= 1:
            logits = logits.clone()
            logits[boundary] = float("-inf")
        return logits

    r = gbot.s2s(wav, processors=[force_im_end, close_after_5])
    assert r.stop_reason == "speech_end" and len(r.speech_codes) == 5

    def no_end(state, logits):
        logits = logits.clone()
        if state.phase == TEXT:
            logits[dec.ids.im_end] = float("-inf")
        return logits

    r = gbot.s2s(wav, processors=[no_end])  # never leaves text: ends cleanly, no codes
    assert r.stop_reason == "max_tokens" and r.speech_codes == [] and r.timings["new_tokens"] == 16

    r = gbot.text_chat("hello", processors=[force_im_end])
    assert r.stop_reason == "text_end" and len(r.text_ids) == 3

    flag = threading.Event()

    def interrupt_after_2(state, logits):
        if state.n_new == 2:
            flag.set()
        return logits

    r = gbot.s2s(wav, interrupt=flag, processors=[interrupt_after_2])
    assert r.stop_reason == "interrupted" and r.timings["new_tokens"] == 3


def test_no_global_state_t2t_after_tts(gbot):
    fresh = gbot.text_chat("hello world")
    gbot.speak("hello world")
    assert gbot.text_chat("hello world").text_ids == fresh.text_ids


def test_age_forcing(tiny_tokenizer, gbot, wav):
    age = AgeForcing.from_tokenizer(tiny_tokenizer)
    from osum_echat.text.tokenizer import encode

    assert list(age.trigger) == encode(tiny_tokenizer, "年龄为:<")
    assert set(age.allowed) == {encode(tiny_tokenizer, w)[0] for w in ("CHILD", "ADULT", "OLD")}
    logits = torch.randn(gbot.model.text_vocab_size)
    assert not age.fires([1, 2, 3])
    assert age.fires([5] + list(age.trigger))
    out = age.apply(logits)
    keep = torch.isfinite(out).nonzero().flatten().tolist()
    assert sorted(keep) == sorted(age.allowed)
    assert torch.equal(out[list(age.allowed)], logits[list(age.allowed)])

    def write_trigger(state, logits):  # the model "writes" 年龄为:< then must pick an age
        n = len(state.text_ids)
        if state.phase == TEXT and n < len(age.trigger):
            out = torch.full_like(logits, float("-inf"))
            out[age.trigger[n]] = 0.0
            return out
        return logits

    r = gbot.s2s(wav, processors=[write_trigger])
    assert r.text_ids[len(age.trigger)] in age.allowed
    # the S2T chat policy has no age forcing: the same prompt gives a free token
    off = make_bot(tiny_tokenizer, GREEDY + ["generate.max_new_tokens=14", "generate.s2s.age_forcing=false"])
    r2 = off.s2s(wav, processors=[write_trigger])
    assert r2.text_ids[: len(age.trigger)] == list(age.trigger)
    assert r2.text_ids[len(age.trigger)] not in age.allowed


def test_ngram_blocker_rules():
    cfg = NGramBlockConfig(enable=True)
    b = 4096
    assert ngram_banned([7, 7, 7, 7], cfg, b) == []
    assert ngram_banned([7, 7, 7, 7, 7], cfg, b) == [7]  # 5 in a row
    assert ngram_banned([1, 7, 2, 7, 3, 7, 4, 7, 7], cfg, b) == [7]  # 5 of the last 8
    assert ngram_banned([7, 1, 7, 2, 7, 3, 7, 4, 7], cfg, b) == []  # only 4 of the last 8
    assert ngram_banned([1446] * 9, cfg, b) == []  # special code: 10 allowed
    assert ngram_banned([1446] * 10, cfg, b) == [1446]
    assert ngram_banned([b] * 6, cfg, b) == []  # boundary never banned


def test_ngram_blocker_in_decoding(tiny_tokenizer, wav):
    base = GREEDY + ["generate.max_new_tokens=24"]
    on = make_bot(tiny_tokenizer, base + ["generate.ngram_block.enable=true"])
    off = make_bot(tiny_tokenizer, base)
    cfg = on.cfg.generate.ngram_block

    def repeat_favour(state, logits):  # strongly favour repeating the last code
        if state.phase == SPEECH and len(state.speech_ids) > 1:
            logits = logits.clone()
            logits[state.speech_ids[-1]] += 1e4
        return logits

    codes_off = off.speak("hello world", processors=[repeat_favour]).speech_codes
    codes_on = on.speak("hello world", processors=[repeat_favour]).speech_codes
    assert len(set(codes_off[1:])) == 1  # without the blocker: one code forever

    def longest_run(c):
        best = run = 1
        for a, b in zip(c, c[1:]):
            run = run + 1 if a == b else 1
            best = max(best, run)
        return best

    assert longest_run(codes_on) <= cfg.repeat_times and len(set(codes_on)) > 1


def test_speech_per_text_limit(tiny_tokenizer, wav, force_im_end):
    """policy.max_speech_per_text: the speech closes after ratio x text tokens (the S2S reply's
    tokens, or the TTS input's), however much the model wants to go on."""
    base = GREEDY + ["generate.max_new_tokens=60"]

    def no_end(state, logits):  # the model never closes its speech by itself
        if state.phase == SPEECH and state.boundaries >= 1:
            logits = logits.clone()
            logits[4096] = -1e9
        return logits

    free = make_bot(tiny_tokenizer, base)
    capped = make_bot(tiny_tokenizer, base + ["generate.s2s.max_speech_per_text=4",
                                              "generate.tts.max_speech_per_text=2"])
    r = free.s2s(wav, processors=[force_im_end, no_end])
    assert r.stop_reason == "max_tokens" and len(r.speech_codes) > 8
    r = capped.s2s(wav, processors=[force_im_end, no_end])
    assert len(r.text_ids) == 3  # force_im_end: 3 reply tokens, then <|im_end|>
    assert r.stop_reason == "speech_end" and len(r.speech_codes) == 4 * 3
    text = "hello world, how are you today?"
    n_text = len(capped.renderer.encode(text))
    t = capped.speak(text, processors=[no_end])
    assert t.stop_reason == "speech_end" and len(t.speech_codes) == 2 * n_text
    assert len(free.speak(text, processors=[no_end]).speech_codes) > 2 * n_text
    # with a think, only the answer after it is spoken: its tokens bound the speech
    from osum_echat.text.tokenizer import encode

    answer = "fine, thank you"
    forced = encode(tiny_tokenizer, "<think>the user sounds sad and old, answer gently<think end>" + answer)
    forced.append(capped.decoder.ids.im_end)
    long = make_bot(tiny_tokenizer, GREEDY + ["generate.max_new_tokens=400", "generate.s2s.max_speech_per_text=4"])

    def say(state, logits):
        if state.phase == "text":
            out = torch.full_like(logits, float("-inf"))
            out[forced[len(state.text_ids)]] = 0.0
            return out
        return logits

    r = long.s2s(wav, think=True, processors=[say, no_end])
    assert r.think and r.text == answer and len(r.text_ids) == len(forced) - 1
    n_answer = len(encode(tiny_tokenizer, answer))
    assert n_answer < len(forced) - 1
    assert r.stop_reason == "speech_end" and len(r.speech_codes) == 4 * n_answer
    with pytest.raises(ValueError, match="max_speech_per_text"):
        make_bot(tiny_tokenizer, ["generate.tts.max_speech_per_text=-1"])


def test_batched_equals_one_by_one(gbot, wav, force_im_end):
    samples = [gbot.sample("s2s", wav[:12000], key="a"), gbot.sample("asr", wav, key="b"),
               gbot.sample("tts", text="hello world, how are you today?", key="c"),
               gbot.sample("s2s", wav[:9000], key="d")]
    batched = gbot.generate(samples, processors=[force_im_end])
    for s, r in zip(samples, batched):
        single = gbot.generate([s], processors=[force_im_end])[0]
        assert r.text_ids == single.text_ids and r.speech_codes == single.speech_codes
        assert r.stop_reason == single.stop_reason


def test_streaming_events(gbot, wav, force_im_end):
    events = list(gbot.stream("s2s", wav, processors=[force_im_end]))
    assert events[-1].kind == "done"
    reply = events[-1].reply
    text = "".join(e.text for e in events if e.kind == "text")
    assert text == gbot.tok.decode(reply.text_ids, skip_special_tokens=True)
    assert [c for e in events if e.kind == "speech" for c in e.codes] == reply.speech_codes
    kinds = [e.kind for e in events]
    assert "speech" in kinds and kinds.index("speech") > max(
        [i for i, k in enumerate(kinds) if k == "text"], default=-1)


def test_stream_think_end(gbot, wav):
    tok = gbot.tok
    from osum_echat.text.tokenizer import encode

    plan = encode(tok, "<think>hello<think end>world") + [gbot.decoder.ids.im_end]

    def script(state, logits):
        if state.phase == TEXT:
            out = torch.full_like(logits, float("-inf"))
            out[plan[len(state.text_ids)]] = 0.0
            return out
        return logits

    events = list(gbot.stream("s2t_think", wav, processors=[script]))
    ends = [e for e in events if e.kind == "think_end"]
    assert len(ends) == 1 and ends[0].text == "hello"
    reply = events[-1].reply
    assert reply.think == "hello" and reply.text == "world"


def test_session_canonical_layout(gbot, wav, force_im_end):
    r = gbot.decoder.ids
    sess = gbot.session()
    first = sess.s2s(wav[:8000], processors=[force_im_end])
    sess.s2s(wav[:9000], processors=[force_im_end])
    assert len(sess.turns) == 2
    s = sess.sample(wav[:10000])
    segs = gbot.request(s).segments
    rd = gbot.renderer
    types = [type(g).__name__ for g in segs]
    turn = ["TextSegment", "SpeechInSegment", "TextSegment", "TextSegment", "SpeechOutSegment", "TextSegment"]
    assert types == ["TextSegment"] + turn * 2 + ["TextSegment", "SpeechInSegment", "TextSegment"]
    assert segs[0].ids == rd.system("s2s")
    assert segs[1].ids == rd.user_start and segs[3].ids == rd.assistant_start
    assert segs[4].ids[-1] == r.im_end and segs[4].ids[:-1] == rd.encode(normalize_label(first.text))
    assert segs[5].ids == [rd.speech_boundary] + first.speech_codes + [rd.speech_boundary]
    assert segs[6].ids == rd.newline
    assert segs[-3].ids == rd.user_start and segs[-1].ids == rd.assistant_start
    assert isinstance(segs[-2], SpeechInSegment) and isinstance(segs[5], SpeechOutSegment)
    assert isinstance(segs[-1], TextSegment)
    sess.reset()
    assert sess.turns == []


def test_age_forcing_ids_with_real_qwen_vocab(qwen_tokenizer):
    age = AgeForcing.from_tokenizer(qwen_tokenizer)  # docs/upstream_compat.md, "Token ids"
    assert age.trigger == (102185, 17714, 31252) and age.allowed == (99119, 1808, 7863)
