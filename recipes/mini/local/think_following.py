"""Think-following records for stage 3: the reply must follow what its think says.

    python recipes/mini/local/think_following.py --data_dir DATA [--seed 11] [--every_other age]
        [--every_value emotion,age]

Reads ``DATA/train/think.jsonl`` (``<S2TCHAT> <THINKER>``) and ``DATA/train/s2sthink.nocodes.jsonl``
(``<S2TCHAT> <TEXT2TOKEN> <THINK>``). For every record whose reply depends on the speaker
(``extra.depends`` emotion or age), it writes one copy whose think names another value of that
attribute (drawn at random; for an attribute named in ``--every_other``, one copy per other value:
run.sh did so for the age group in rounds 14-15, whose replies are whole sentences per question
rather than an opener shared by all questions; for an attribute named in ``--every_value``, one
copy per value, the speaker's own included: run.sh does so for both attributes since round 16),
with the reply that follows from the changed think (and, for S2S,
that reply's audio as ``extra.answer_wav``), and ``extra.think_loss: false``: the think is
given, not learnt (its tokens carry no loss, the reply does), so the copy teaches the reply to
follow its think without teaching the think a wrong attribute. ``extra.age`` / ``q_emotion``
describe the changed think (the tag think style builds its template from them);
``extra.counterfactual`` keeps the attribute and the speaker's real value.
Outputs: ``DATA/train/think_cf.jsonl`` and ``DATA/train/s2sthink_cf.nocodes.jsonl`` (stage 1
of run.sh adds the speech codes like for the other S2S lists).

Why: on the replies that depend on the speaker, the think named the right emotion or age group
more often than the plain S2S reply chose the right one, but the reply after it did not always
follow it (recipes/mini/README.md). Why the speaker's own value too: the copies are listed more
often than the real records, so with copies of the other values only, the reply of a copy is
*less* likely to be the one the audio calls for than any other, and a reply that reads the audio
learns to avoid the speaker's own value (round 16: a child's think followed by the old group's
reply). With a copy of every value, the audio says nothing about the reply, the think says all.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vocab as V  # noqa: E402
from make_corpus import answer_of, write_jsonl  # noqa: E402

ATTRIBUTE_KEY = {"emotion": ("q_emotion", V.EMOTION_TAG), "age": ("age", V.AGE_TAG)}


def question_index(question: str) -> tuple[str, int]:
    """(language, qa index) of a question label."""
    for lang in ("en", "zh"):
        labels = [q for q, _ in V.questions(lang)]
        if question in labels:
            return lang, labels.index(question)
    raise ValueError(f"unknown question {question!r} (regenerate the corpus)")


def counterfactuals(rec: dict, rng: random.Random, every_other: frozenset[str] = frozenset(),
                    every_value: frozenset[str] = frozenset()) -> list[dict]:
    """The think-following copies of one think / S2S+think record: one whose think names another
    value of the attribute the reply depends on (drawn), or, for an attribute in ``every_other``,
    one per other value, or, for one in ``every_value``, one per other value and one that names the
    speaker's own (key suffix ``-cfr``); none when the reply does not depend on the speaker."""
    dep = (rec.get("extra") or {}).get("depends", "none")
    if dep not in ATTRIBUTE_KEY:
        return []
    key, tags = ATTRIBUTE_KEY[dep]
    real = {v: k for k, v in tags.items()}[rec["extra"][key]]
    others = [v for v in tags if v != real]
    if dep not in every_other | every_value:
        return [counterfactual(rec, rng.choice(others))]
    copies = [counterfactual(rec, v, suffix=f"-cf{i}") for i, v in enumerate(others)]
    return copies + [counterfactual(rec, real, suffix="-cfr")] if dep in every_value else copies


def counterfactual(rec: dict, other: str, suffix: str = "-cf") -> dict:
    """The copy of ``rec`` whose think names ``other`` (a value of the attribute its reply
    depends on; the speaker's own gives ``rec``'s reply with the think not learnt) and whose reply
    is the one that value calls for; its key is ``rec``'s + ``suffix``."""
    extra = rec["extra"]
    dep = extra["depends"]
    field, _ = ATTRIBUTE_KEY[dep]
    lang, qa = question_index(extra["question"])
    emotion = {v: k for k, v in V.EMOTION_TAG.items()}[extra["q_emotion"]]
    age = {v: k for k, v in V.AGE_TAG.items()}[extra["age"]]
    if dep == "emotion":
        emotion = other
    else:
        age = other
    gender = {v: k for k, v in V.GENDER_TAG.items()}[extra["gender"]]
    _, label, _, variant = answer_of(lang, qa, emotion, age)
    new_extra = dict(extra, think_str=V.think_string(lang, age, gender, emotion, extra["question"]),
                     age=V.AGE_TAG[age], q_emotion=V.EMOTION_TAG[emotion], think_loss=False,
                     counterfactual={"attribute": dep, "speaker": extra[field]})
    if "answer_wav" in extra:
        new_extra["answer_wav"] = str(Path(extra["answer_wav"]).parent / f"ans_{lang}_{qa:02d}_{variant}.wav")
    return dict(rec, key=rec["key"] + suffix, txt=label, extra=new_extra)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--every_other", default="",
                   help="comma-separated attributes (emotion, age) whose records get a copy for every other "
                        "value instead of one drawn (rounds 14-15 of run.sh: age; recipes/mini/README.md item 56)")
    p.add_argument("--every_value", default="",
                   help="comma-separated attributes whose records get a copy for every value, the speaker's own "
                        "included (it wins over --every_other; run.sh: emotion,age, README round 16)")
    a = p.parse_args(argv)
    every_other, every_value = (frozenset(x for x in v.split(",") if x) for v in (a.every_other, a.every_value))
    for name, attrs in (("--every_other", every_other), ("--every_value", every_value)):
        if not attrs <= set(ATTRIBUTE_KEY):
            raise SystemExit(f"{name} {','.join(sorted(attrs))!r}: attributes are {', '.join(ATTRIBUTE_KEY)}")
    rng = random.Random(a.seed)
    train = Path(a.data_dir) / "train"
    for src, dst in (("think.jsonl", "think_cf.jsonl"), ("s2sthink.nocodes.jsonl", "s2sthink_cf.nocodes.jsonl")):
        out = [c for r in read_jsonl(train / src) for c in counterfactuals(r, rng, every_other, every_value)]
        for r in out:
            wav = r["extra"].get("answer_wav")
            if wav and not Path(wav).is_file():
                raise SystemExit(f"{r['key']}: no reply audio {wav} (regenerate the corpus)")
        write_jsonl(train / dst, out)
        print(f"[think_following] {len(out)} records -> {train / dst}")


if __name__ == "__main__":
    main()
