"""The mini recipe's spoken-reply scoring: the CTC reply ASR file (save, load, transcribe, the
harness plug-in factory), the spoken-form scoring and the encoder pre-training that writes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "recipes" / "mini" / "local"
sys.path.insert(0, str(LOCAL))

import reply_asr as RA  # noqa: E402
import score_speech as SS  # noqa: E402
import spoken_form as SF  # noqa: E402

SYMBOLS = list("abcdefghijklmnopqrstuvwxyz '12345")


def _tiny_asr(path: Path) -> Path:
    from osum_echat.model.config import EncoderConfig
    from osum_echat.model.encoder import WhisperEncoder

    torch.manual_seed(0)
    enc = WhisperEncoder(EncoderConfig(d_model=16, num_heads=2, ffn_dim=32, num_layers=1, max_positions=3000,
                                       dropout=0.0, positional_dropout=0.0, activation_checkpointing=False))
    RA.save_asr(path, enc, nn.Linear(16, len(SYMBOLS) + 1), SYMBOLS)
    return path


def test_greedy_ctc_merges_repeats_and_drops_blanks():
    ids = torch.tensor([[0, 1, 1, 0, 1, 2, 2, 3], [2, 2, 0, 0, 0, 0, 0, 0]])  # (B, T); 0 = blank
    logits = nn.functional.one_hot(ids, 4).float()
    assert RA.greedy_ctc(logits, torch.tensor([8, 2]), ["a", "b", "c"]) == ["aabc", "b"]
    assert RA.toneless("xian4 zai4jiu3 dian3") == "xian zai jiu dian" and RA.toneless("it's nine") == "it's nine"


def test_reply_asr_file_round_trip_and_transcripts(tmp_path):
    path = _tiny_asr(tmp_path / "asr.pt")
    asr = RA.ReplyAsr(path, batch_size=2)
    assert asr.symbols == SYMBOLS and asr.n_mels == 80
    rng = np.random.default_rng(0)
    wavs = [torch.from_numpy(0.1 * rng.standard_normal(n).astype("float32")) for n in (8000, 100, 16000, 4000)]
    out = asr(wavs)
    assert len(out) == 4 and all(isinstance(t, str) for t in out)
    assert out[1] == ""  # shorter than one STFT window: no words, no crash
    assert out[0] and set(out[0]) <= set(SYMBOLS)  # a random head still emits symbols
    alone = RA.ReplyAsr(path, batch_size=1)([wavs[2]])
    assert alone == [out[2]]  # batching and padding change nothing
    # the CLI over a folder of WAVs
    for i, w in enumerate(wavs[:2]):
        sf.write(tmp_path / f"k{i}.wav", w.numpy(), 16000)
    RA.main(["--asr", str(path), "--wav_dir", str(tmp_path), "--out", str(tmp_path / "tr")])
    lines = (tmp_path / "tr").read_text(encoding="utf-8").splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["k0", "k1"]
    torch.save({"encoder": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a reply ASR file"):
        RA.ReplyAsr(tmp_path / "other.pt")


def test_reply_asr_as_a_harness_plugin(tmp_path):
    from osum_echat.eval.generation import load_asr

    path = _tiny_asr(tmp_path / "asr.pt")
    asr = load_asr(f"{LOCAL / 'reply_asr.py'}:build:{path}", bot=None)
    assert asr.strip_tones and asr.reference_form("<开心>现在九点") == "xian zai jiu dian"
    assert asr.reference_form("It is nine o'clock.") == "it is nine o'clock"
    assert isinstance(asr([torch.zeros(4000)])[0], str)


def test_spoken_form_of_labels_and_transcripts():
    assert SF.syllables("<开心>太好了现在九点") == ["tai", "hao", "le", "xian", "zai", "jiu", "dian"]
    assert SF.syllables("tai4 hao3 le5 xian4zai4 jiu3 dian3") == ["tai", "hao", "le", "xian", "zai", "jiu", "dian"]
    assert SF.readings()["十"] == "shi" and SF.readings()["分"] == "fen"  # template words of random_sentence
    assert SF.spoken_errors("定时十六分钟", "ding4 shi2 shi2 liu4 fen1 zhong1").errors == 0
    c = SF.spoken_errors("现在猫点", "xian4 zai4 mao1 dian3")  # 猫 is not in the vocabulary: an error
    assert c.ref == 4 and c.errors == 1
    e = SF.spoken_errors("it is nine o'clock", "it is nine oclock")  # English: characters, no spaces
    assert e.ref == len("itisnineo'clock") and e.errors == 1


def test_score_replies_strips_tags_and_scores_in_spoken_units():
    refs = {"u1_zh-s2s": "<开心>太好了现在九点", "u2_en-s2s": "<安慰鼓励>cheer up good night",
            "u3_zh-s2s": "<中立>等于二", "ans_zh-tts": "开灯", "u4-s2sthink": "<中立>sleep well"}
    texts = {"u1_zh-s2s": "太好了现在九点", "u2_en-s2s": "cheer up good night", "u3_zh-s2s": "<中立>",
             "ans_zh-tts": "", "u4-s2sthink": "sleep well"}
    heard = {"u1_zh-s2s": "tai4 hao3 le5 xian4 zai4 jiu3 dian3", "u2_en-s2s": "cheer up good night",
             "u3_zh-s2s": "deng3 yu2 er4", "ans_zh-tts": "kai1 deng1"}  # u4 has no audio
    res = SS.score_replies(refs, texts, heard, ceiling=dict(heard))
    assert res["s2s_spoken_cer"]["cer"] == 0.0 and res["s2s_spoken_cer"]["n"] == 3
    assert res["s2s_spoken_cer"]["by_lang"]["zh"]["ref_tokens"] == 7 + 3
    assert res["tts_spoken_cer"]["cer"] == 0.0 and "tts_consistency" not in res
    assert res["s2s_consistency"]["n"] == 2  # u3's reply text has no words
    assert res["s2sthink_spoken_cer"]["n"] == 0 and res["s2sthink_spoken_cer"]["n_items"] == 1
    assert res["spoken_cer"]["n"] == 4 and res["ceiling_cer"]["cer"] == 0.0
    wrong = dict(heard, **{"u1_zh-s2s": "tai4 hao3 le5 xian4 zai4 ba1 dian3", "u2_en-s2s": "cheer up good morning"})
    bad = SS.score_replies(refs, texts, wrong, ceiling={})
    assert bad["s2s_spoken_cer"]["by_lang"]["zh"]["errors"] == 1
    assert bad["s2s_spoken_cer"]["cer"] > 0 and bad["s2s_consistency"]["cer"] > 0 and "ceiling_cer" not in bad
    assert res["s2s_other_reply"] == {"metric": "other_reply", "n": 2, "count": 0, "errors": 0,
                                      "consistency_errors": 0, "n_items": 3}


def test_other_reply_counts_audio_that_says_another_reply():
    """A reply whose audio is another candidate reply (3+ spoken units closer to it than to its
    own text) is counted with its errors; a near miss of its own text is not."""
    refs = {"a-s2s": "<中立>once upon a time", "b-s2s": "<开心>great good morning", "c-s2s": "<中立>现在九点"}
    texts = {"a-s2s": "once upon a time", "b-s2s": "<开心>great good morning", "c-s2s": "<中立>现在九点"}
    heard = {"a-s2s": "cheer up once upon a time", "b-s2s": "great good mornin", "c-s2s": "zao3 shang4 hao3 ya5"}
    res = SS.score_replies(refs, texts, heard, ceiling={}, replies={"cheer up once upon a time"})
    o = res["s2s_other_reply"]
    assert (o["n"], o["count"]) == (3, 1) and o["errors"] == len("cheerup")
    assert o["consistency_errors"] == len("cheerup") + 1 + 4  # b: one deletion; c: 4 syllables, no candidate closer
    res = SS.score_replies(refs, texts, heard, ceiling={}, replies={"cheer up once upon a time", "早上好呀"})
    assert res["s2s_other_reply"]["count"] == 2


def _write_wav(path: Path, seconds: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.02 * rng.standard_normal(t.size))
             .astype("float32"), 16000)
    return str(path)


def test_pretrain_encoder_trains_replies_and_writes_the_reply_asr(tmp_path, capsys):
    pytest.importorskip("torchaudio")
    import pretrain_encoder as PE

    users = [dict(key=f"u{i}", wav=_write_wav(tmp_path / f"u{i}.wav", 0.5, i), spoken="ab c",
                  gender=("male", "female")[i % 2], age="adult", emotion="sad") for i in range(4)]
    replies = [dict(key=f"r{i}", lang="zh", txt="x", wav=_write_wav(tmp_path / f"r{i}.wav", 0.6, 10 + i),
                    spoken="ni3 hao3'") for i in range(3)]
    for name, rows in (("utts", users), ("assistant", replies)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    torch.manual_seed(0)
    torch.save({"centroids": torch.randn(8, 320) - 4.0, "rate_hz": 25}, tmp_path / "codec.pt")

    def run(name: str, *extra: str) -> str:
        PE.main(["--config", str(REPO / "conf" / "model" / "tiny.yaml"), "--utts", str(tmp_path / "utts.jsonl"),
                 "--dev", str(tmp_path / "utts.jsonl"), "--out", str(tmp_path / f"{name}.pt"), "--steps", "2",
                 "--eval_every", "2", *extra])
        return capsys.readouterr().out

    replies_opts = ["--assistant", str(tmp_path / "assistant.jsonl"), "--codec", str(tmp_path / "codec.pt"),
                    "--roundtrip_copies", "2"]
    log = run("mixed", *replies_opts, "--asr_out", str(tmp_path / "asr.pt"))
    assert "13 train (9 assistant) / 4 dev" in log  # 4 users + 3 replies + 2 x 3 round trips
    assert "assistant replies, train orig (3): CER" in log and "train round trip (6): CER" in log
    asr = RA.ReplyAsr(tmp_path / "asr.pt")
    assert set("ni3 ha'") <= set(asr.symbols) and len(asr([torch.zeros(8000)])) == 1
    # mixed into the encoder's steps: the model's encoder is the reply ASR's encoder
    full = torch.load(tmp_path / "mixed.pt")
    assert all(torch.equal(full[f"encoder.{k}"], v) for k, v in asr.encoder.state_dict().items())
    # --asr_steps: the encoder's own steps are those of a run without replies; a copy trains on
    run("alone")
    log = run("apart", *replies_opts, "--asr_steps", "2", "--asr_out", str(tmp_path / "asr2.pt"))
    assert "4 train (0 assistant)" in log and "[asr] 13 train (9 assistant)" in log
    alone, apart = torch.load(tmp_path / "alone.pt"), torch.load(tmp_path / "apart.pt")
    assert all(torch.equal(alone[k], apart[k]) for k in alone)
    asr2 = RA.ReplyAsr(tmp_path / "asr2.pt")
    assert asr2.symbols == asr.symbols and asr2.ctc.out_features == len(asr.symbols) + 1
    assert not torch.equal(asr2.encoder.state_dict()["after_norm.weight"], alone["encoder.after_norm.weight"])
    # --shared_asr: the model's encoder is trained on through the reply phase and is the ASR's
    log = run("joint", *replies_opts, "--asr_steps", "2", "--shared_asr", "--asr_out", str(tmp_path / "asr3.pt"))
    assert "wrote" in log and "(2 + 2 steps)" in log
    joint, asr3 = torch.load(tmp_path / "joint.pt"), RA.ReplyAsr(tmp_path / "asr3.pt")
    assert all(torch.equal(joint[f"encoder.{k}"], v) for k, v in asr3.encoder.state_dict().items())
    assert not torch.equal(joint["encoder.after_norm.weight"], alone["encoder.after_norm.weight"])
    # + --asr_extra_steps: the same model encoder, the ASR reads on in a copy
    log = run("extra", *replies_opts, "--asr_steps", "2", "--shared_asr", "--asr_extra_steps", "2",
              "--asr_out", str(tmp_path / "asr4.pt"))
    assert "[asr+] step 2/2" in log
    extra, asr4 = torch.load(tmp_path / "extra.pt"), RA.ReplyAsr(tmp_path / "asr4.pt")
    assert all(torch.equal(extra[k], joint[k]) for k in joint)
    assert not torch.equal(asr4.encoder.state_dict()["after_norm.weight"], extra["encoder.after_norm.weight"])
    # + --asr_extra_fresh / --asr_extra_user_every: the copy's own items (every 2nd user, the 3
    # replies, 2 new round trips of each); the model's encoder is still the joint one
    log = run("fresh", *replies_opts, "--asr_steps", "2", "--shared_asr", "--asr_extra_steps", "2",
              "--asr_extra_fresh", "2", "--asr_extra_user_every", "2", "--asr_out", str(tmp_path / "asr5.pt"))
    assert "[asr+] 11 train (9 assistant)" in log and "[asr+] step 2/2" in log
    fresh, asr5 = torch.load(tmp_path / "fresh.pt"), RA.ReplyAsr(tmp_path / "asr5.pt")
    assert all(torch.equal(fresh[k], joint[k]) for k in joint)
    assert not torch.equal(asr5.encoder.state_dict()["after_norm.weight"], asr4.encoder.state_dict()["after_norm.weight"])
    args = PE.parse_args(["--config", "c", "--utts", "u", "--dev", "d", "--out", "o", "--codec", str(tmp_path / "codec.pt"),
                          "--asr_extra_fresh", "2", "--roundtrip_copies", "2", "--seed", "5"])
    orig = PE.read_utts(str(tmp_path / "assistant.jsonl"), 80, {}, attributes=False)
    phase = PE.round_trip(orig, args.codec, 80, 2, 5)
    items = PE.extra_items([], {"train orig": orig, "train round trip": phase}, args, 80).epoch(0)
    assert len(items) == 9 and all(not torch.equal(a[0], b[0]) for a, b in zip(items[3:], phase))  # new phases
    with pytest.raises(SystemExit, match="shape the --asr_extra_steps"):
        run("bad", *replies_opts, "--asr_steps", "2", "--shared_asr", "--asr_extra_fresh", "2")
    with pytest.raises(SystemExit, match="--asr_extra_fresh needs --codec"):
        run("bad", "--assistant", str(tmp_path / "assistant.jsonl"), "--asr_steps", "2", "--shared_asr",
            "--asr_extra_steps", "2", "--asr_extra_fresh", "2")
    # --roundtrip_pool: 4 round trips decoded per reply, 2 of them in each epoch's items
    log = run("pooled", *replies_opts, "--roundtrip_pool", "4")
    assert "13 train (9 assistant) / 4 dev" in log and "train round trip (12): CER" in log
    with pytest.raises(SystemExit, match="need --assistant"):
        run("bad", "--asr_steps", "2")
    with pytest.raises(SystemExit, match="--roundtrip_pool needs --codec"):
        run("bad", "--assistant", str(tmp_path / "assistant.jsonl"), "--roundtrip_pool", "4")
    with pytest.raises(SystemExit, match="continues a --shared_asr run"):
        run("bad", *replies_opts, "--asr_steps", "2", "--asr_extra_steps", "2")
    bad = tmp_path / "nospoken.jsonl"
    bad.write_text(json.dumps(dict(replies[0], spoken="")) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="nospoken.jsonl:1 .r0.: no 'spoken'"):
        PE.read_utts(str(bad), 80, {}, attributes=False)


def test_epoch_items_rotate_each_replys_round_trips():
    """EpochItems: the fixed items every epoch; of each reply's pool of round trips, per_epoch
    copies in turn, so that every copy is trained once per pool // per_epoch epochs and the
    replies' share never changes; pool == per_epoch is the plain list of every item."""
    pytest.importorskip("torchaudio")
    import pretrain_encoder as PE

    fixed = ["u0", "u1", "r0", "r1"]
    trips = [f"r{i}.{k}" for i in range(2) for k in range(4)]  # 4 consecutive copies per reply
    items = PE.EpochItems(fixed, trips, pool=4, per_epoch=2)
    assert len(items) == 8
    assert items.epoch(0) == fixed + ["r0.0", "r0.1", "r1.0", "r1.1"]
    assert items.epoch(1) == fixed + ["r0.2", "r0.3", "r1.2", "r1.3"]
    assert items.epoch(2) == items.epoch(0)
    odd = PE.EpochItems(fixed, trips, pool=4, per_epoch=3)  # 3 of 4: the turn wraps round the pool
    assert odd.epoch(1)[4:7] == ["r0.3", "r0.0", "r0.1"] and len(odd.epoch(5)) == len(odd) == 10
    seen = {t for e in range(4) for t in odd.epoch(e)[4:]}
    assert seen == set(trips)
    plain = PE.EpochItems(fixed, trips, pool=4, per_epoch=4)
    assert plain.epoch(0) == plain.epoch(3) == fixed + trips
    assert PE.EpochItems(fixed).epoch(7) == fixed
    with pytest.raises(ValueError, match="7 round trips, 4 per reply"):
        PE.EpochItems(fixed, trips[:7], pool=4, per_epoch=2)
    with pytest.raises(ValueError, match="5 per epoch"):
        PE.EpochItems(fixed, trips, pool=4, per_epoch=5)


def test_codec_decode_many_seeds_each_phase(tmp_path):
    """mini_codec.decode_many: one Griffin-Lim phase seed per sequence (the same seed gives the
    same waveform, another seed another one, the caller's random state is left alone), and the
    spawned worker processes return every sequence in order."""
    pytest.importorskip("torchaudio")
    import mini_codec as MC

    torch.manual_seed(0)
    torch.save({"centroids": torch.randn(8, 320) - 4.0, "rate_hz": 25}, tmp_path / "codec.pt")
    codes = [[1, 2, 3, 4, 5, 6, 7, 0] * 2, [3] * 12, [5, 6] * 5, [0, 7] * 7]
    state = torch.random.get_rng_state()
    one = MC.decode_many(str(tmp_path / "codec.pt"), codes, [1, 1, 2, 3])
    assert torch.equal(state, torch.random.get_rng_state())
    again = MC.decode_many(str(tmp_path / "codec.pt"), codes, [1, 1, 2, 3])
    assert all(torch.equal(a, b) for a, b in zip(one, again))
    assert torch.equal(one[0], MC.decode_many(str(tmp_path / "codec.pt"), codes[:1], [1])[0])
    assert not torch.equal(one[0], MC.decode_many(str(tmp_path / "codec.pt"), codes[:1], [9])[0])
    pooled = MC.decode_many(str(tmp_path / "codec.pt"), codes, [1, 1, 2, 3], workers=2)
    assert [w.shape for w in pooled] == [w.shape for w in one]
    # single-thread workers: the same waveforms whichever worker decodes which sequence
    swapped = MC.decode_many(str(tmp_path / "codec.pt"), codes[::-1], [3, 2, 1, 1], workers=2)
    assert all(torch.equal(a, b) for a, b in zip(pooled, swapped[::-1]))
    with pytest.raises(ValueError, match="4 code sequences but 3 seeds"):
        MC.decode_many(str(tmp_path / "codec.pt"), codes, [1, 2, 3])
    # a missing codec fails at once in the caller, also with workers (a Pool whose initializer
    # fails would respawn its workers forever): run in a child so that a regression cannot hang
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import mini_codec as MC\n"
             "try:\n    MC.decode_many(sys.argv[2], [[1, 2]] * 4, [1, 2, 3, 4], workers=2)\n"
             "except FileNotFoundError:\n    print('clear error')\n")
    out = subprocess.run([sys.executable, "-c", probe, str(LOCAL), str(tmp_path / "no_codec.pt")],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "clear error", out.stderr[-2000:]
    # the decode CLI: one phase seed per key, so a key's WAV does not depend on the file's order
    # or on the number of decoding processes
    lines = [f"k{i} {' '.join(map(str, c))}\n" for i, c in enumerate(codes)]
    for name, rows, threads in (("a", lines, "1"), ("b", lines[::-1], "2")):
        (tmp_path / f"{name}.codes").write_text("".join(rows), encoding="utf-8")
        MC.main(["decode", "--codec", str(tmp_path / "codec.pt"), "--codes", str(tmp_path / f"{name}.codes"),
                 "--out_dir", str(tmp_path / name), "--threads", threads])
    # the reference decoded as the CLI's workers decode: one thread (the CLI left torch at 2; with 2
    # threads Griffin-Lim's iterations took float noise to 2-8 LSB on an AVX-512 host)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want = [MC.decode_many(str(tmp_path / "codec.pt"), [c], [MC.key_seed(f"k{i}")])[0]
                for i, c in enumerate(codes)]
    finally:
        torch.set_num_threads(threads)
    for i, c in enumerate(codes):
        a, _ = sf.read(tmp_path / "a" / f"k{i}.wav", dtype="float32")
        b, _ = sf.read(tmp_path / "b" / f"k{i}.wav", dtype="float32")
        assert np.array_equal(a, b) and a.shape == tuple(want[i].shape)
        # 16-bit PCM: libsndfile writes x * 32767 rounded and reads n / 32768: < 1 LSB off
        assert np.allclose(a, want[i].numpy(), rtol=0, atol=1 / 32768)
    assert MC.key_seed("k0") == MC.key_seed("k0") != MC.key_seed("k1")
