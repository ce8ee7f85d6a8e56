"""Synthesize the mini corpus with espeak-ng and write raw jsonl lists per task family.

    python recipes/mini/local/make_corpus.py --out_dir recipes/mini/data [--quick] [--nj 2]

Writes (under --out_dir):
  wav/<split>/*.wav, wav/assistant/*.wav   16 kHz mono speech
  <split>/utts.jsonl                       one record per user utterance (all attributes)
  <split>/asr.jsonl                        <TRANSCRIBE> records (sharded by the recipe)
  <split>/s2t.jsonl                        tags (<GENDER> <AGE> <EMOTION> <TRANSCRIBE> <AGE> <GENDER>)
  <split>/chat.jsonl, think.jsonl          <S2TCHAT>, <S2TCHAT> <THINKER>
  <split>/t2t.jsonl                        <TEXT2TEXT>
  <split>/{t2s,s2s,s2sthink}.nocodes.jsonl TTS / S2S / S2S+think records with extra.answer_wav;
                                           the speech codes are added by stage 1 (mini_codec.py)
  test/<task>.jsonl                        one list per evaluated task
Speakers: 34 espeak-ng voice variants in train, 4 other ones in dev and 6 in test (vocab.VOICES);
genders are balanced.
Age = pitch level + voice effect (child: formants shifted up, old: tremolo), emotion =
speed/loudness/word-gap style. Replies in a fixed assistant voice; the spoken reply to some
questions opens according to the user's emotion, to others it depends on the age group
(vocab.EMOTION_QA / *_AGE_QA; records say which in extra.depends), the rest are fixed; Mandarin is synthesized from tone-numbered pinyin with ``cmn-latn-pinyin``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import vocab as V  # noqa: E402

SIZES = {False: {"train": 2400, "dev": 120, "test": 300}, True: {"train": 600, "dev": 40, "test": 90}}
QUESTION_RATE = 0.4
DEPENDENT_RATE = 0.5  # of the questions, the share whose reply depends on the speaker's emotion or age


def espeak_args(lang: str, variant: str, pitch: int, speed: float, amp: int = 100, gap: int = 0):
    voice = ("en-us" if lang == "en" else "cmn-latn-pinyin") + "+" + variant
    return ["espeak-ng", "-v", voice, "-p", str(max(0, min(99, pitch))),
            "-s", str(int(V.BASE_SPEED[lang] * speed)), "-a", str(amp), "-g", str(gap), "--stdout"]


def synth(job: tuple[list[str], str, str, list[str]]) -> str:
    """espeak-ng (22.05 kHz) | sox [effects] -> 16 kHz 16-bit mono WAV; returns the path. sox runs
    repeatable (``-R``: its dither noise is seeded), so two runs of the corpus write the same bytes
    (without it about 40 % of the samples differed by 1-2 LSB from one run to the next)."""
    args, text, path, effects = job
    tts = subprocess.Popen(args + [text], stdout=subprocess.PIPE)
    subprocess.run(["sox", "-R", "-V1", "-G", "-t", "wav", "-", "-r", "16000", "-c", "1", "-b", "16", path, *effects],
                   stdin=tts.stdout, check=True)
    tts.stdout.close()
    if tts.wait() != 0:
        raise RuntimeError(f"espeak-ng failed on {text!r}")
    return path


def user_utterances(split: str, n: int, rng: random.Random, wav_dir: Path):
    """Utterance metadata + synthesis jobs of one split."""
    utts, jobs = [], []
    for i in range(n):
        lang = rng.choice(["en", "zh"])
        gender = rng.choice(["male", "female"])
        variant = rng.choice(V.VOICES[split][gender])
        age, emotion = rng.choice(list(V.AGE_PROSODY)), rng.choice(list(V.EMOTION_PROSODY))
        if rng.random() < QUESTION_RATE:
            dep = rng.random() < DEPENDENT_RATE
            qa = rng.choice([i for i in range(len(V.questions(lang))) if (V.depends_on(lang, i) != "none") == dep])
            text, spoken = V.questions(lang)[qa]
        else:
            qa, (text, spoken) = -1, V.random_sentence(lang, rng)
        a_pitch, a_speed = V.AGE_PROSODY[age]
        e_pitch, e_speed, amp, gap = V.EMOTION_PROSODY[emotion]
        pitch = a_pitch + e_pitch + rng.randint(-3, 3)
        speed = a_speed * e_speed * rng.uniform(0.95, 1.05)
        key = f"{split}_{i:05d}_{lang}_{variant}"
        path = str(wav_dir / split / f"{key}.wav")
        utts.append(dict(key=key, wav=path, lang=lang, txt=text, spoken=spoken, qa=qa,
                         voice=variant, gender=gender, age=age, emotion=emotion))
        jobs.append((espeak_args(lang, variant, pitch, speed, amp, gap), spoken, path, V.AGE_EFFECTS[age]))
    return utts, jobs


def answer_of(lang: str, qa: int, emotion: str, age: str) -> tuple[str, str, str, str]:
    """(plain answer label, spoken reply label with its answer-emotion tag, its spoken text, the
    reply variant: the emotion, the age group or 'fixed', by what the reply depends on)."""
    ans, ans_spoken = V.answer(lang, qa, age)
    dep = V.depends_on(lang, qa)
    pre, pre_spoken = V.EMPATHY_PREFIX[lang][emotion] if dep == "emotion" else ("", "")
    sep = " " if lang == "en" and pre else ""
    variant = {"emotion": emotion, "age": age}.get(dep, "fixed")
    return ans, f"<{V.ANSWER_EMOTION[emotion]}>{pre.strip()}{sep}{ans}", pre_spoken + ans_spoken, variant


def assistant_items(wav_dir: Path, rng: random.Random, n_extra: int):
    """Reply audio (every answer x emotion) plus extra TTS sentences, in the assistant voice."""
    items, jobs = {}, []
    a = V.ASSISTANT

    def add(name: str, lang: str, text: str, spoken: str) -> None:
        path = str(wav_dir / "assistant" / f"{name}.wav")
        items[name] = dict(key=name, lang=lang, txt=text, spoken=spoken, wav=path)
        jobs.append((espeak_args(lang, a["variant"], a["pitch"], a["speed"]), spoken, path, []))

    for lang in ("en", "zh"):
        for qa in range(len(V.questions(lang))):
            for emo in V.EMOTION_PROSODY:
                for age in V.AGE_PROSODY:
                    _, label, spoken, variant = answer_of(lang, qa, emo, age)
                    if f"ans_{lang}_{qa:02d}_{variant}" not in items:
                        add(f"ans_{lang}_{qa:02d}_{variant}", lang, label.split(">", 1)[1], spoken)
    seen = set()
    for i in range(n_extra):
        lang = "en" if i % 2 == 0 else "zh"
        text, spoken = V.random_sentence(lang, rng)
        if text not in seen:
            seen.add(text)
            add(f"tts_{lang}_{i:04d}", lang, text, spoken)
    return items, jobs


def tag_records(u: dict) -> list[dict]:
    g, a, e = V.GENDER_TAG[u["gender"]], V.AGE_TAG[u["age"]], V.EMOTION_TAG[u["emotion"]]
    extra = {"gender": u["gender"], "age": u["age"], "emotion": u["emotion"]}
    base = dict(key=u["key"], wav=u["wav"])
    return [dict(base, key=u["key"] + "-gender", task="<GENDER>", txt=g, extra=extra),
            dict(base, key=u["key"] + "-age", task="<AGE>", txt=a, extra=extra),
            dict(base, key=u["key"] + "-emotion", task="<EMOTION>", txt=e, extra=extra),
            dict(base, key=u["key"] + "-tag", task="<TRANSCRIBE> <AGE> <GENDER>",
                 txt=u["txt"] + a + g, extra=extra)]


def chat_records(u: dict, replies: dict) -> tuple[list[dict], list[dict]]:
    """(s2t chat records, s2s records without codes) of a question utterance."""
    lang, qa, emo = u["lang"], u["qa"], u["emotion"]
    _, empathetic, _, variant = answer_of(lang, qa, emo, u["age"])
    think = V.think_string(lang, u["age"], u["gender"], emo, u["txt"])
    tags = {"question": u["txt"], "q_txt": u["txt"], "age": V.AGE_TAG[u["age"]],
            "gender": V.GENDER_TAG[u["gender"]], "q_emotion": V.EMOTION_TAG[emo]}
    # Every spoken-input chat task answers with the same (empathetic) reply: when S2T chat
    # answered plainly and S2S with the opener, the two differed only in the system prompt and
    # the S2S+think reply ignored the emotion its own think named (recipes/mini/README.md).
    # depends: what the right reply depends on besides the words (the scoring's subsets).
    tags["depends"] = V.depends_on(lang, qa)
    reply = replies[f"ans_{lang}_{qa:02d}_{variant}"]
    base = dict(wav=u["wav"])
    s2t = [dict(base, key=u["key"] + "-chat", task="<S2TCHAT>", txt=empathetic, extra={"depends": tags["depends"]}),
           dict(base, key=u["key"] + "-think", task="<S2TCHAT> <THINKER>", txt=empathetic,
                extra={"think_str": think, **tags})]
    s2s = [dict(base, key=u["key"] + "-s2s", task="<S2TCHAT> <TEXT2TOKEN>", txt=empathetic,
                extra={"answer_wav": reply["wav"], **tags}),
           dict(base, key=u["key"] + "-s2sthink", task="<S2TCHAT> <TEXT2TOKEN> <THINK>",
                txt=empathetic, extra={"answer_wav": reply["wav"], "think_str": think, **tags})]
    return s2t, s2s


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def split_lists(split: str, utts: list[dict], replies: dict, out: Path) -> dict[str, list[dict]]:
    asr, tags, chat, s2s = [], [], [], []
    for u in utts:
        asr.append(dict(key=u["key"] + "-asr", wav=u["wav"], task="<TRANSCRIBE>", txt=u["txt"],
                        extra={"gender": u["gender"], "age": u["age"], "emotion": u["emotion"]}))
        tags += tag_records(u)
        if u["qa"] >= 0:
            c, s = chat_records(u, replies)
            chat += c
            s2s += s
    t2t = [dict(key=f"{split}_t2t_{lang}_{i:02d}", task="<TEXT2TEXT>", txt=a, extra={"question": q})
           for lang in ("en", "zh") for i, ((q, _), (a, _)) in enumerate(V.qa_pairs(lang))]
    lists = {"asr": asr, "s2t": tags, "chat": [r for r in chat if r["task"] == "<S2TCHAT>"],
             "think": [r for r in chat if r["task"] != "<S2TCHAT>"],
             "s2s.nocodes": [r for r in s2s if "<THINK>" not in r["task"]],
             "s2sthink.nocodes": [r for r in s2s if "<THINK>" in r["task"]], "t2t": t2t}
    for name, recs in lists.items():
        write_jsonl(out / split / f"{name}.jsonl", recs)
    write_jsonl(out / split / "utts.jsonl", utts)
    return lists


def tts_lists(items: dict, rng: random.Random, n_test: int, out: Path) -> None:
    recs = [dict(key=k, task="<TEXT2TOKEN>", txt=v["txt"], extra={"answer_wav": v["wav"]})
            for k, v in sorted(items.items())]
    rng.shuffle(recs)
    write_jsonl(out / "train" / "t2s.nocodes.jsonl", recs)
    write_jsonl(out / "test" / "t2s.nocodes.jsonl", recs[:n_test])  # closed vocabulary: seen texts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--quick", action="store_true", help="fewer utterances (CI)")
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        sys.exit("espeak-ng / sox not found: apt-get install -y --no-install-recommends espeak-ng sox "
                 "(the top-level run.sh installs it on first use)")
    out = Path(a.out_dir).resolve()
    wav_dir = out / "wav"
    for sub in ("train", "dev", "test", "assistant"):
        (wav_dir / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)
    sizes = SIZES[a.quick]
    utts, jobs = {}, []
    for split, n in sizes.items():
        utts[split], j = user_utterances(split, n, rng, wav_dir)
        jobs += j
    replies, j = assistant_items(wav_dir, rng, 60 if a.quick else 200)
    jobs += j
    with Pool(a.nj) as pool:
        for _ in pool.imap_unordered(synth, jobs, chunksize=16):
            pass
    for split in sizes:
        lists = split_lists(split, utts[split], replies, out)
        if split == "test":
            by_task: dict[str, list[dict]] = {}
            for r in [r for recs in lists.values() for r in recs]:
                if "-" in r["key"]:
                    by_task.setdefault(r["key"].rsplit("-", 1)[1], []).append(r)
            for name, recs in by_task.items():
                suffix = ".nocodes" if name.startswith("s2s") else ""
                write_jsonl(out / "test" / "tasks" / f"{name}{suffix}.jsonl", recs)
            write_jsonl(out / "test" / "tasks" / "t2t.jsonl", lists["t2t"])
    tts_lists(replies, rng, 10 if a.quick else 30, out)
    write_jsonl(out / "assistant.jsonl", list(replies.values()))
    n_wav = sum(sizes.values()) + len(replies)
    print(f"mini corpus: {n_wav} wavs, splits {sizes}, {len(replies)} assistant items -> {out}")


if __name__ == "__main__":
    main()
