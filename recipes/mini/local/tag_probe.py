"""Forced-choice tag accuracy: which gender / age / emotion label does the model rank first?

    python recipes/mini/local/tag_probe.py --decode_dir DIR --config C --checkpoint CKPT \
        --tokenizer TOK [--device cpu] [--batch_size 16] [--think [--seed 1]]

For every ``<GENDER>`` / ``<AGE>`` / ``<EMOTION>`` record of ``DIR/test.jsonl`` the prompt is
prefilled as in decoding and the logits of the first answer token are read at that task's labels
only (``<MALE>`` / ``<FEMALE>``, ``<CHILD>`` / ``<ADULT>`` / ``<OLD>``, ``<HAPPY>`` / ``<SAD>`` /
``<NEUTRAL>``; each one token of the mini tokenizer). Two choices per record:

* raw: the label with the highest logit;
* calibrated: the highest logit after each label's mean logit over the task's records is taken
  off (a constant preference for one label, which a few steps of another task can shift in a
  short run, cancels; what is left is what the audio changes). No reference is used for it.

Adds ``gender_choice``, ``age_choice``, ``emotion_choice`` to ``DIR/results.json``: ``accuracy``
(raw), ``calibrated``, ``n`` and ``majority``, the share of the most frequent label: the most an
answer that ignores the audio gets (a constant label; calibrated, one that varies with anything
but the voice gets that share at most in expectation).

Unlike the decoded tag accuracy (``score_all.py``) it does not ask the model to answer in the
task's format, only what it knows about the voice: a short run whose model starts every answer
the same way (the quick run's 80 stage-3 steps teach it ``<think>`` first) still shows here
whether its LLM reads the speaker from the audio (``check_learning.py``'s third check).
``--think`` also runs ``think_probe.py``'s probes on the same loaded model (one process for both
in stage 5).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vocab as V  # noqa: E402

LABELS = {"<GENDER>": ("gender", V.GENDER_TAG), "<AGE>": ("age", V.AGE_TAG), "<EMOTION>": ("emotion", V.EMOTION_TAG)}


def label_ids(tok, tags: dict[str, str]) -> dict[int, str]:
    """token id -> label tag; every label must be one token (else the choice would be of prefixes)."""
    from osum_echat.text.tokenizer import encode

    out = {}
    for tag in tags.values():
        ids = encode(tok, tag)
        if len(ids) != 1:
            raise SystemExit(f"tag_probe: label {tag} is {len(ids)} tokens of this tokenizer (one is needed)")
        out[ids[0]] = tag
    return out


def probe_request(bot, sample):
    """The decode request of ``sample``, text only, with a policy that leaves the logits as the
    head gives them (no repetition penalty or age forcing, whatever the config's)."""
    from dataclasses import replace

    req = bot.request(sample)
    req.policy = replace(req.policy, greedy=True, repetition_penalty=1.0, age_forcing=False)
    req.speech_out = False
    return req


def label_scores(bot, reqs, ids_of: dict[str, list[int]]) -> list[list[float]]:
    """The first-step logits of each request (``probe_request``) at ``ids_of[key]`` (prefill +
    one step; the rest is not decoded)."""
    import torch

    from osum_echat.generate.decoder import TEXT

    got: dict[str, list[float]] = {}

    def record(state, logits):
        if state.phase == TEXT and not state.text_ids:
            got[state.req.key] = logits[torch.tensor(ids_of[state.req.key])].tolist()
        return logits

    steps = bot.decoder.steps(reqs, processors=[record])
    try:
        next(steps)
    finally:
        steps.close()
    return [got[r.key] for r in reqs]


def choices(scores: list[list[float]]) -> tuple[list[int], list[int]]:
    """(raw, calibrated) argmax per row of ``scores`` (rows: records of one task, columns: its
    labels); calibrated takes each column's mean off first."""
    n = len(scores)
    mean = [sum(row[j] for row in scores) / n for j in range(len(scores[0]))]
    raw = [max(range(len(row)), key=row.__getitem__) for row in scores]
    cal = [max(range(len(row)), key=lambda j: row[j] - mean[j]) for row in scores]
    return raw, cal


def probe(bot, decode_dir: Path, batch_size: int = 16) -> dict[str, dict]:
    """``{gender,age,emotion}_choice`` of the tag records of ``decode_dir/test.jsonl``."""
    from osum_echat.data.tasks import canonical_task
    from osum_echat.generate.batch_decode import iter_items, prepare

    ids = {task: label_ids(bot.tok, tags) for task, (_, tags) in LABELS.items()}
    cfg = bot.cfg.data
    jobs: dict[str, list] = {}  # task -> [(request, reference tag)]
    for item in iter_items(str(Path(decode_dir) / "test.jsonl"), cfg.path_prefix_map, "raw"):
        s = item.sample
        task = canonical_task(s.task or "<TRANSCRIBE>")
        if task not in LABELS:
            continue
        ref = (s.txt or "").strip()
        if ref not in ids[task].values():
            raise SystemExit(f"tag_probe: {s.key}: reference {ref!r} is not a label of {task}")
        prepare(s, None, cfg.sample_rate, cfg.num_mel_bins, cfg.speech_token_num - 1)
        jobs.setdefault(task, []).append((probe_request(bot, s), ref))
    out = {}
    for task, rows in jobs.items():
        cols = list(ids[task])
        scores = []
        for i in range(0, len(rows), batch_size):
            reqs = [r for r, _ in rows[i:i + batch_size]]
            scores += label_scores(bot, reqs, {r.key: cols for r in reqs})
        raw, cal = choices(scores)
        refs = [ref for _, ref in rows]
        n = len(refs)
        out[f"{LABELS[task][0]}_choice"] = {
            "metric": "accuracy", "n": n,
            "accuracy": sum(ids[task][cols[j]] == ref for j, ref in zip(raw, refs)) / n,
            "calibrated": sum(ids[task][cols[j]] == ref for j, ref in zip(cal, refs)) / n,
            "majority": max(Counter(refs).values()) / n}
    return out


def main() -> None:
    import think_probe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    think_probe.add_model_args(p)
    p.add_argument("--think", action="store_true", help="also the think probes of think_probe.py")
    a = p.parse_args()
    d = Path(a.decode_dir)
    if not (d / "test.jsonl").is_file():
        raise SystemExit(f"tag_probe: no {d / 'test.jsonl'} (the decoded list of stage 5)")
    bot = think_probe.load_bot(a)
    out = probe(bot, d, a.batch_size)
    if out:
        print("tag_probe: " + ", ".join(f"{k} {100 * v['accuracy']:.1f} % / calibrated {100 * v['calibrated']:.1f} % "
                                         f"(most frequent label {100 * v['majority']:.1f} %, n {v['n']})"
                                         for k, v in out.items()))
    else:
        print(f"tag_probe: no <GENDER> / <AGE> / <EMOTION> records in {d / 'test.jsonl'}")
    if a.think:
        out.update(think_probe.run(bot, d, a.batch_size, a.seed))
    if out:
        think_probe.add_results(d, out)


if __name__ == "__main__":
    main()
