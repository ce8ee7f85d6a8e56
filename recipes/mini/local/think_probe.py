"""Does the S2S+think reply follow its think? Three answers, on the test records whose reply
depends on the speaker (``extra.depends`` emotion or age), added to ``DIR/results.json``:

    python recipes/mini/local/think_probe.py --decode_dir DIR --config C --checkpoint CKPT \
        --tokenizer TOK [--device cpu] [--batch_size 16] [--seed 1]

* ``s2sthink_follows``: the decoded reply (``DIR/text``) is the one its own decoded think
  (``DIR/think``) calls for, right or wrong (no decoding; the think must name the attribute);
* ``s2sthink_forced_true``: the think is forced to the speaker's real attributes (the think of
  the training data) and the reply decoded after it is the right one;
* ``s2sthink_forced_other``: the think is forced to name another emotion / age group (drawn with
  ``--seed``) and the reply is the one that other think calls for.

A reply that reads the speaker from the audio and not from its think scores the first two like
plain S2S and the third near 0; a reply that follows its think scores the third like the second.
Forcing: every text token of ``<think>..<think end>`` is the only one allowed in turn, then the
reply is decoded with the S2S policy of the config (greedy in the mini recipe; text only: the
speech of S2S follows the text). Only the language think style
(``what should i eat<CHILD><FEMALE><SAD>``) is probed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vocab as V  # noqa: E402
from make_corpus import answer_of  # noqa: E402
from think_following import question_index  # noqa: E402

from osum_echat.eval.score import read_kv  # noqa: E402
from osum_echat.eval.wer import normalize_for_scoring  # noqa: E402

TAG_EMOTION = {t: e for e, t in V.EMOTION_TAG.items()}
TAG_AGE = {t: a for a, t in V.AGE_TAG.items()}
TAG_GENDER = {t: g for g, t in V.GENDER_TAG.items()}


def norm(text: str) -> str:
    """Reply text as the exact-match scoring compares it, without the tags."""
    return normalize_for_scoring(text)


def think_attributes(think: str) -> tuple[str | None, str | None]:
    """(emotion, age group) a decoded language-style think names (None where it names none)."""
    tags = re.findall(r"<[A-Z]+>", think)
    emo = next((TAG_EMOTION[t] for t in tags if t in TAG_EMOTION), None)
    age = next((TAG_AGE[t] for t in tags if t in TAG_AGE), None)
    return emo, age


def dependent_records(decode_dir: Path) -> list[dict]:
    """The S2S+think records of the decoded list whose reply depends on the speaker."""
    out = []
    for ln in (decode_dir / "test.jsonl").read_text(encoding="utf-8").splitlines():
        if ln.strip():
            r = json.loads(ln)
            if r["key"].endswith("-s2sthink") and (r.get("extra") or {}).get("depends", "none") != "none":
                out.append(r)
    return out


def wanted_reply(r: dict, emotion: str, age: str) -> str:
    """The reply the corpus gives this question for a speaker of that emotion and age group."""
    lang, qa = question_index(r["extra"]["question"])
    return norm(answer_of(lang, qa, emotion, age)[1])


def speaker(r: dict) -> tuple[str, str]:
    e = r["extra"]
    return TAG_EMOTION[e["q_emotion"]], TAG_AGE[e["age"]]


def other_think(r: dict, rng: random.Random) -> tuple[str, str]:
    """(emotion, age group) with the attribute the reply depends on changed."""
    emo, age = speaker(r)
    if r["extra"]["depends"] == "emotion":
        return rng.choice([x for x in V.EMOTION_TAG if x != emo]), age
    return emo, rng.choice([x for x in V.AGE_TAG if x != age])


def follows_own(records: list[dict], think: dict[str, str], text: dict[str, str]) -> dict:
    n = ok = 0
    for r in records:
        emo, age = think_attributes(think.get(r["key"], ""))
        real_emo, real_age = speaker(r)
        n += 1
        if (emo if r["extra"]["depends"] == "emotion" else age) is None:
            continue  # a think that names nothing is not followed
        ok += norm(text.get(r["key"], "")) == wanted_reply(r, emo or real_emo, age or real_age)
    return {"metric": "exact", "n": n, "accuracy": ok / max(n, 1)}


def force_processor(ids_of: dict[str, list[int]]):
    """A decoder processor that makes request ``key`` begin its text with ``ids_of[key]``
    (each forced token the only one allowed in turn); the rest is decoded as usual."""
    import torch

    from osum_echat.generate.decoder import TEXT

    def force(state, logits):
        ids = ids_of.get(state.req.key, ())
        k = len(state.text_ids)
        if state.phase == TEXT and k < len(ids):
            only = torch.full_like(logits, float("-inf"))
            only[..., ids[k]] = 0.0
            return logits + only
        return logits

    return force


def forced(records: list[dict], bot, decode_dir: Path, batch_size: int, seed: int) -> dict[str, dict]:
    from osum_echat.generate.batch_decode import iter_items, prepare
    from osum_echat.text.prompts import THINK_CLOSE, THINK_OPEN
    from osum_echat.text.tokenizer import encode

    if bot.cfg.text.think_style != "language":
        raise SystemExit(f"think_probe: think_style {bot.cfg.text.think_style!r} is not probed (language only)")
    by_key = {r["key"]: r for r in records}
    rng = random.Random(seed)
    jobs = []  # (mode: true | other, request, forced think ids, the reply that think calls for)
    cfg = bot.cfg.data
    for item in iter_items(str(Path(decode_dir) / "test.jsonl"), cfg.path_prefix_map, "raw"):
        r = by_key.get(item.sample.key)
        if r is None:
            continue
        prepare(item.sample, None, cfg.sample_rate, cfg.num_mel_bins, cfg.speech_token_num - 1)
        lang, _ = question_index(r["extra"]["question"])
        for mode, (emo, age) in (("true", speaker(r)), ("other", other_think(r, rng))):
            think = V.think_string(lang, age, TAG_GENDER[r["extra"]["gender"]], emo, r["extra"]["question"])
            req = bot.request(item.sample)
            req.speech_out = False  # the reply text decides; its speech follows it
            req.key = f"{r['key']}|{mode}"
            ids = encode(bot.tok, f"{THINK_OPEN}{think}{THINK_CLOSE}")
            jobs.append((mode, req, ids, wanted_reply(r, emo, age)))
    force = force_processor({req.key: ids for _, req, ids, _ in jobs})
    counts = {"true": [0, 0], "other": [0, 0]}
    for i in range(0, len(jobs), batch_size):
        chunk = jobs[i:i + batch_size]
        replies = bot.decoder.generate([req for _, req, _, _ in chunk], processors=[force])
        for (mode, _, _, want), reply in zip(chunk, replies):
            counts[mode][0] += norm(reply.text) == want
            counts[mode][1] += 1
    return {f"s2sthink_forced_{m}": {"metric": "exact", "n": n, "accuracy": ok / max(n, 1)}
            for m, (ok, n) in counts.items()}



def run(bot, decode_dir: Path, batch_size: int = 16, seed: int = 1) -> dict[str, dict]:
    """The three answers for the decode in ``decode_dir`` ({} without dependent records)."""
    d = Path(decode_dir)
    if not (d / "test.jsonl").is_file():
        raise SystemExit(f"think_probe: no {d / 'test.jsonl'} (the decoded list of stage 5)")
    records = dependent_records(d)
    if not records:
        print(f"think_probe: no speaker-dependent S2S+think records in {d / 'test.jsonl'}")
        return {}
    for name in ("think", "text"):
        if not (d / name).is_file():
            raise SystemExit(f"think_probe: no {d / name} (the decode of stage 5)")
    out = {"s2sthink_follows": follows_own(records, read_kv(d / "think"), read_kv(d / "text"))}
    out.update(forced(records, bot, d, batch_size, seed))
    print("think_probe: " + ", ".join(f"{k} {100 * v['accuracy']:.1f} % (n {v['n']})" for k, v in out.items()))
    return out


def add_results(decode_dir: Path, out: dict) -> None:
    """Merge ``out`` into ``decode_dir/results.json``."""
    res_path = Path(decode_dir) / "results.json"
    results = json.loads(res_path.read_text(encoding="utf-8")) if res_path.is_file() else {}
    results.update(out)
    res_path.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


def load_bot(a: argparse.Namespace):
    import torch

    from osum_echat.generate.echat import EChat

    torch.set_num_threads(a.threads)
    return EChat.from_pretrained(a.checkpoint, a.config, a.tokenizer, a.device, "fp32")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The options of a probe of one model on the decode of stage 5 (this one and tag_probe.py)."""
    p.add_argument("--decode_dir", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="draws the other think")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    a = p.parse_args()
    if not (Path(a.decode_dir) / "test.jsonl").is_file():
        raise SystemExit(f"think_probe: no {Path(a.decode_dir) / 'test.jsonl'} (the decoded list of stage 5)")
    out = run(load_bot(a), Path(a.decode_dir), a.batch_size, a.seed)
    if out:
        add_results(Path(a.decode_dir), out)


if __name__ == "__main__":
    main()
