"""Data-list YAMLs of the three training stages (input of common_utils/expand_data_lists.py).

    python recipes/mini/local/write_data_yamls.py --data_dir DATA --out_dir DATA/lists

stage 1, ASR warm-up:    ASR shards, the gender combine relabel (<TRANSCRIBE> <GENDER>) (--warmup_age:
                         + the <TRANSCRIBE> <AGE> <GENDER> records x --warmup_age_weight,
                         OUT_DIR/asr_age_gender.jsonl)
stage 1 (understanding): ASR shards x2, the combine, tag records; text chat (--digit_weight W: + the
                         digit strings x W, OUT_DIR/asr_digits.jsonl, written here)
stage 2 (generation):    + spoken chat (<S2TCHAT>) x4, TTS, S2S; ASR x2 (+ the digit strings x W),
                         tag records replayed
stage 3 (empathy):       + think chat (<S2TCHAT> <THINKER>), S2S with think (--think_following:
                         + their think-following copies, think_cf.jsonl and s2sthink_cf.jsonl);
                         --stage3_weights NAME=W,...: these entries' weights in stage 3
--given_reply W:         stages 2-3 + the S2S records with another reply's text (given, no loss)
                         and codes x W (OUT_DIR/s2s_given_reply.jsonl, written here)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Callable

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from osum_echat.eval.store import read_jsonl  # noqa: E402
from osum_echat.text.normalize import split_leading_tag  # noqa: E402
from spoken_form import language  # noqa: E402
from vocab import is_digit_string  # noqa: E402

DIGITS = "asr_digits.jsonl"  # in the lists folder: the digit-string records of train/asr.jsonl
AGE_TAGS = "asr_age_gender.jsonl"  # in the lists folder: the <TRANSCRIBE> <AGE> <GENDER> records of train/s2t.jsonl
AGE_TASK = "<TRANSCRIBE> <AGE> <GENDER>"
GIVEN_REPLY = "s2s_given_reply.jsonl"  # in the lists folder: S2S records speaking another reply, text given


def read_list(src: Path, made_by: str = "stage 0") -> list[dict]:
    """The records of the corpus list ``src``; a missing or unreadable list (file:line) stops the
    recipe with a clear message (``made_by``: the run.sh stage that writes it)."""
    if not src.is_file():
        raise SystemExit(f"{src}: missing (run {made_by} first)")
    try:
        return read_jsonl(src)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def write_subset(src: Path, dst: Path, keep: Callable[[int, dict], bool], what: str) -> int:
    """Write the records of the corpus list ``src`` that ``keep(number, record)`` accepts to
    ``dst``; returns their number. A missing or unreadable list (file:line) or no record kept
    (``what`` names them) stops the recipe with a clear message."""
    records = read_list(src)
    kept = [r for n, r in enumerate(records, 1) if keep(n, r)]
    if not kept:
        raise SystemExit(f"{src}: no {what} (regenerate the corpus)")
    dst.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    return len(kept)


def write_digit_strings(data_dir: Path, out_dir: Path) -> int:
    """OUT_DIR/asr_digits.jsonl: the ASR records of train/asr.jsonl whose label is a random digit
    string (``vocab.is_digit_string``); returns their number. The LLM reads those or fails (it
    cannot guess them from a closed vocabulary): they were 15 % of the ASR utterances and 62-65 %
    of the model's ASR errors (README, round 5)."""
    src = data_dir / "train/asr.jsonl"

    def digits(n: int, r: dict) -> bool:
        if not isinstance(r, dict) or not isinstance(r.get("txt"), str):
            raise SystemExit(f"{src}: record {n} is not an ASR record with a 'txt' label")
        return is_digit_string(r["txt"])

    return write_subset(src, out_dir / DIGITS, digits, "digit-string utterances")


def write_age_tags(data_dir: Path, out_dir: Path) -> int:
    """OUT_DIR/asr_age_gender.jsonl: the ``<TRANSCRIBE> <AGE> <GENDER>`` records of
    train/s2t.jsonl (a transcript with the age group and gender after it), for the ASR warm-up;
    returns their number."""
    return write_subset(data_dir / "train/s2t.jsonl", out_dir / AGE_TAGS,
                        lambda _, r: isinstance(r, dict) and r.get("task") == AGE_TASK, f"{AGE_TASK} records")


def write_given_replies(data_dir: Path, out_dir: Path, seed: int = 13) -> int:
    """OUT_DIR/s2s_given_reply.jsonl: one copy of every S2S record of train/s2s.jsonl whose label
    and speech codes are those of another reply of the corpus (one whose words differ: half of
    the copies another variant of the same question's reply where it has one, the rest any reply
    in the same language), with ``extra.text_loss: false``: the reply text is given (no loss),
    the codes after it are learnt. The model's codes said another reply than its own text in
    8-18 of 240 test replies, 12-34 % of the text-speech errors (README, round 8); these copies
    make the text the only guide to the codes. Returns their number."""
    src = data_dir / "train/s2s.jsonl"
    records = read_list(src, "stages 0-1")  # stage 1 adds the speech codes
    replies: dict[str, dict] = {}  # label -> the record extra fields that go with it
    for n, r in enumerate(records, 1):
        extra = r.get("extra") if isinstance(r, dict) else None
        if not (isinstance(extra, dict) and isinstance(r.get("txt"), str) and extra.get("speech_token")
                and extra.get("question")):
            raise SystemExit(f"{src}:{n}: not an S2S record with txt, extra.question and extra.speech_token")
        replies.setdefault(r["txt"], {"speech_token": extra["speech_token"], "answer_wav": extra.get("answer_wav"),
                                      "question": extra["question"]})
    words = {label: split_leading_tag(label)[1] for label in replies}
    lang = {label: language(w) for label, w in words.items()}
    rng = random.Random(seed)
    out = []
    for r in records:
        own = r["txt"]
        others = [x for x in replies if words[x] != words[own] and lang[x] == lang[own]]
        variants = [x for x in others if replies[x]["question"] == r["extra"]["question"]]
        if not others:
            raise SystemExit(f"{src}: {r['key']}: no other reply in its language (regenerate the corpus)")
        label = rng.choice(variants if variants and rng.random() < 0.5 else others)
        extra = dict(r["extra"], speech_token=replies[label]["speech_token"], text_loss=False,
                     given_reply={"speaker_reply": own})
        if replies[label]["answer_wav"]:
            extra["answer_wav"] = replies[label]["answer_wav"]
        out.append(dict(r, key=r["key"] + "-given", txt=label, extra=extra))
    (out_dir / GIVEN_REPLY).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out),
                                       encoding="utf-8")
    return len(out)


def stage_entries(d: Path, think_following: bool = False, lists: Path | None = None,
                  digit_weight: float = 0, warmup_age: bool = False,
                  given_reply: float = 0, warmup_age_weight: float = 1,
                  think_following_weights: tuple[float, float] = (12, 4),
                  stage3_weights: dict[str, float] | None = None) -> dict[str, dict[str, dict]]:
    """{stage: {name: {path, weight, family}}} of DATA_DIR ``d``; ``lists`` is the folder of
    asr_digits.jsonl (listed with ``digit_weight`` > 0), asr_age_gender.jsonl (listed in the
    warm-up with ``warmup_age``, ``warmup_age_weight`` times) and s2s_given_reply.jsonl (listed in
    stages 2-3 with ``given_reply`` > 0; default d/lists); ``think_following_weights``: the think
    chat and S2S+think think-following copies' weights in stage 3 (with ``think_following``);
    ``stage3_weights``: {entry name: weight} set in stage 3 only (a name stage 3 does not list
    stops the recipe with a clear message)."""
    def e(path: Path, family: str, weight: float = 1) -> dict:
        return {"path": str(path), "weight": weight, "family": family}

    # --digit_weight W (run.sh: 3 since round 7): the digit strings x W from the stage-1 mixture on; the LLM read
    # them at 54-63 % CER (the CTC encoder under it at 17 %); x 3 in stage 1 of one model: 13.9 ->
    # 13.0 % CER. Not in the warm-up: there they delayed the LLM's take-off (README, round 5)
    digits = {"asr_digits": e((lists or d / "lists") / DIGITS, "s2t", digit_weight)} if digit_weight > 0 else {}
    s1a = {"asr_shards": e(d / "shards/shards_list.txt", "s2t"),
           "gender_relabel": e(d / "gender_combine/combines_list.txt", "s2t")}
    s1 = {**s1a, "asr_shards": e(d / "shards/shards_list.txt", "s2t", 2), **digits,
          "tags": e(d / "train/s2t.jsonl", "s2t"), "text_chat": e(d / "train/t2t.jsonl", "t2t", 5)}
    # --warmup_age (run.sh: on since round 7): the warm-up also transcribes with the age group and gender
    # after the text; without it the LLM began to read the age only in the mixture and, with some
    # seeds, never told the three groups apart (README, round 7). --warmup_age_weight 2 (run.sh: since
    # round 15): listed twice, so the age records are half of the warm-up's utterances instead of a
    # third; at once, some draws' warm-ups ended reading no age at all, and their mixture did not
    # learn it either (README, round 15)
    if warmup_age:
        s1a = {**s1a, "age_tags": e((lists or d / "lists") / AGE_TAGS, "s2t", warmup_age_weight)}
    # stages 2-3 replay ASR twice (with stage 1's proportions the held-out CER rose from 35 % to
    # 54 % over stages 2-3), the digit strings (with --digit_weight) and the tag records at full weight
    # (at half weight the age fell to chance over the longer stages 2-3; README, "What limits the tiny model")
    replay = {"asr_shards": e(d / "shards/shards_list.txt", "s2t", 2), "gender_relabel": s1a["gender_relabel"],
              **digits, "tags": e(d / "train/s2t.jsonl", "s2t", 1), "text_chat": s1["text_chat"]}
    s2 = {**replay, "spoken_chat": e(d / "train/chat.jsonl", "s2t", 4),
          "tts": e(d / "train/t2s.jsonl", "t2s"), "s2s": e(d / "train/s2s.jsonl", "s2s")}
    # opt-in (run.sh --given_reply W): S2S records speaking another reply, the text given (README, round 8)
    if given_reply > 0:
        s2["s2s_given_reply"] = e((lists or d / "lists") / GIVEN_REPLY, "s2s", given_reply)
    # think-heavy: with think chat x2 and S2S+think x1 the reply ignored its own think (it
    # followed the think's emotion in 40-60 % of the replies that depend on it; README)
    s3 = {**s2, "think_chat": e(d / "train/think.jsonl", "s2t", 6),
          "s2s_think": e(d / "train/s2sthink.jsonl", "s2s", 2)}
    # --think_following (run.sh: on since round 10): think-following copies (think_following.py: the
    # think names another emotion / age group, the reply follows it, the think carries no loss),
    # listed twice as often as the real think records. Without them the reply read the speaker
    # from the audio and followed a think forced to another emotion / age group in 12-14 % of the
    # speaker-dependent test records; at the real records' weight in 47 %, twice it in 81-94 %
    # (three times it, one run: ASR CER 14 -> 32 %); README rounds 3 and 10. run.sh passes 8 / 3 since
    # round 16, whose copies name every value (three per record; round 15: one per emotion record, two
    # per age record): as many think-chat listings as two copies per record at 12 (README item 64)
    if think_following:
        s2t_w, s2s_w = think_following_weights
        s3.update(think_following=e(d / "train/think_cf.jsonl", "s2t", s2t_w),
                  s2s_think_following=e(d / "train/s2sthink_cf.jsonl", "s2s", s2s_w))
    # --stage3_weights (run.sh: spoken_chat=5,s2s=1.25,s2s_think=3 since round 19): at stage 2's weights
    # (x 4 / x 1) the plain spoken chat and S2S were 8 % and 2 % of stage 3's records (stage 2: 17 % and
    # 4 %) and lost the speaker-dependent replies over stage 3; S2S+think x 3 keeps the think ahead of
    # them on those replies (README, round 17)
    for name, weight in (stage3_weights or {}).items():
        if name not in s3:
            raise SystemExit(f"--stage3_weights: stage 3 lists no {name!r} (it lists {', '.join(s3)})")
        s3[name] = {**s3[name], "weight": weight}
    return {"1_asr": s1a, "1": s1, "2": s2, "3": s3}


def parse_weights(spec: str) -> dict[str, float]:
    """{name: weight} of ``NAME=W,NAME=W`` (empty: none); a malformed pair, a repeated name or a
    weight that is not > 0 stops the recipe with a clear message."""
    out: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not (sep and name.strip() and math.isfinite(weight) and weight > 0) or name.strip() in out:
            raise SystemExit(f"--stage3_weights {spec!r}: NAME=W pairs, each name once, W > 0")
        out[name.strip()] = int(weight) if weight.is_integer() else weight
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--think_following", action="store_true",
                   help="stage 3 adds train/think_cf.jsonl and train/s2sthink_cf.jsonl (think_following.py)")
    p.add_argument("--digit_weight", type=float, default=0,
                   help="list the random digit strings of train/asr.jsonl again, this many times, from the "
                        "stage-1 mixture on (0: not at all; run.sh passes 3, README rounds 5 and 7)")
    p.add_argument("--warmup_age", action="store_true",
                   help="the stage-1 ASR warm-up also trains the <TRANSCRIBE> <AGE> <GENDER> records")
    p.add_argument("--warmup_age_weight", type=float, default=1,
                   help="with --warmup_age: list those records this many times (> 0; run.sh passes 2, "
                        "README round 15)")
    p.add_argument("--think_following_weights", default="12,4",
                   help="with --think_following: the weights of the think chat and S2S+think copies in stage 3, "
                        "S2T,S2S (> 0; run.sh passes 8,3, README round 16)")
    p.add_argument("--stage3_weights", default="",
                   help="NAME=W,...: stage 3's weights of these entries of its YAML (W > 0; the others as "
                        "built; run.sh passes spoken_chat=5,s2s=1.25,s2s_think=3, README rounds 17-19)")
    p.add_argument("--given_reply", type=float, default=0,
                   help="stages 2-3 list this many copies of the S2S records that speak another reply "
                        "with its text given (no loss on the text; 0: none)")
    a = p.parse_args(argv)
    out = Path(a.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.data_dir).resolve()
    if a.digit_weight < 0:
        raise SystemExit(f"--digit_weight {a.digit_weight}: must be >= 0")
    if a.warmup_age_weight <= 0:
        raise SystemExit(f"--warmup_age_weight {a.warmup_age_weight}: must be > 0")
    try:
        tf_weights = tuple(float(x) for x in a.think_following_weights.split(","))
    except ValueError:
        tf_weights = ()
    if len(tf_weights) != 2 or not all(w > 0 for w in tf_weights):
        raise SystemExit(f"--think_following_weights {a.think_following_weights!r}: two weights > 0, S2T,S2S")
    if a.given_reply < 0:
        raise SystemExit(f"--given_reply {a.given_reply}: must be >= 0")
    # every check before the first file is written
    stages = stage_entries(data, a.think_following, out, a.digit_weight, a.warmup_age, a.given_reply,
                           a.warmup_age_weight, tf_weights, parse_weights(a.stage3_weights))
    if a.digit_weight > 0:
        print(f"{write_digit_strings(data, out)} digit-string utterances -> {out / DIGITS} (x {a.digit_weight:g})")
    if a.given_reply > 0:
        print(f"{write_given_replies(data, out)} S2S records with another reply given -> {out / GIVEN_REPLY} "
              f"(x {a.given_reply:g}, stages 2-3)")
    if a.warmup_age:
        print(f"{write_age_tags(data, out)} {AGE_TASK} records -> {out / AGE_TAGS} "
              f"(ASR warm-up, x {a.warmup_age_weight:g})")
    for n, entries in stages.items():
        with open(out / f"stage{n}.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(entries, f, sort_keys=False)
    if a.stage3_weights.strip():
        print("stage 3: " + ", ".join(f"{k} x {v['weight']:g}" for k, v in stages["3"].items()))


if __name__ == "__main__":
    main()
