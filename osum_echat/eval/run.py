"""One evaluation run: read a suite's items, decode them (jobs), transcribe replies, score,
judge, and write ``items.jsonl`` / ``results.json`` / ``report.md`` / plots.

Files under ``OUT``: ``run.json`` (the settings a rerun must repeat), ``list.jsonl`` (the raw
list decoded), ``items.read.jsonl`` (the suite's items), ``gen/`` (batch-decode output per job +
``transcripts.jsonl``), ``judge.jsonl`` (judge answers, keyed by item, judge and rubric version).
Every stage skips finished work on a rerun.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from osum_echat.eval import echat_eval, understanding, voicebench
from osum_echat.eval.store import KeyedJsonl, read_jsonl, write_jsonl

logger = logging.getLogger(__name__)
SUITES = {"understanding": understanding, "echat": echat_eval, "voicebench": voicebench}


@dataclass
class RunConfig:
    suite: str
    data: str
    out: str
    think: bool = False
    limit: int = 0
    nj: int = 1
    judge: str = "rule"
    judge_batch: int = 8
    reply_asr: str = "self"
    vocoder: Optional[str] = None
    batch_size: int = 8
    device: str = "cpu"
    path_prefix_map: dict = field(default_factory=dict)


def _sample_record(s, audio_dir: Path) -> dict:
    """A list sample as a raw record (audio bytes / segments written to a local wav)."""
    from osum_echat.audio.io import load_audio, save_wav

    rec = {"key": s.key, "task": s.task or "<TRANSCRIBE>", "txt": s.txt, "extra": s.extra}
    a = s.audio
    if a is None:
        raise ValueError(f"{s.key}: the understanding suite needs audio")
    if a.data is not None or a.start is not None:
        audio_dir.mkdir(parents=True, exist_ok=True)
        wav, sr = load_audio(a.source(), a.start, a.end)
        path = audio_dir / f"{s.key}.wav"
        save_wav(path, wav, sr)
        rec["wav"] = str(path)
    else:
        rec["wav"] = a.path
    return rec


def _check_settings(cfg: RunConfig) -> None:
    """A rerun must use the settings the folder was made with (else its state would be mixed)."""
    path = Path(cfg.out) / "run.json"
    now = {"suite": cfg.suite, "data": str(Path(cfg.data).resolve()), "think": cfg.think, "limit": cfg.limit,
           "nj": cfg.nj, "vocoder": cfg.vocoder, "reply_asr": cfg.reply_asr}
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), v) for k, v in now.items() if old.get(k) != v}
        if diff:
            raise SystemExit(f"{cfg.out} was made with other settings {diff} (old, new): use another --out")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(now, indent=1), encoding="utf-8")


def prepare(cfg: RunConfig) -> list[dict]:
    """Read the suite's items and write ``list.jsonl`` once (later calls reuse them)."""
    _check_settings(cfg)
    out = Path(cfg.out)
    read_path, list_path = out / "items.read.jsonl", out / "list.jsonl"
    if read_path.exists() and list_path.exists():
        return read_jsonl(read_path)
    if cfg.suite == "understanding":
        from osum_echat.generate.batch_decode import iter_items

        samples = [it.sample for it in iter_items(cfg.data, cfg.path_prefix_map)]
        samples = samples[:cfg.limit] if cfg.limit else samples
        items = understanding.read(samples)
        records = [_sample_record(s, out / "audio") for s in samples]
    else:
        mod = SUITES[cfg.suite]
        items = echat_eval.read_manifest(cfg.data) if cfg.suite == "echat" else voicebench.read(cfg.data, out)
        items = items[:cfg.limit] if cfg.limit else items
        records = [mod.decode_record(it, cfg.think) for it in items]
    write_jsonl(list_path, records)
    write_jsonl(read_path, items)
    return items


def generate_job(cfg: RunConfig, bot, job_id: int) -> None:
    """Decode job ``job_id``'s share of ``list.jsonl``; echat also synthesizes + transcribes."""
    from osum_echat.eval.generation import load_asr, load_vocoder, transcribe_replies
    from osum_echat.generate.batch_decode import decode_job

    out = Path(cfg.out)
    keys = [r["key"] for r in read_jsonl(out / "list.jsonl")]
    mine = keys[job_id::cfg.nj] if len(keys) >= cfg.nj else keys[job_id:job_id + 1]
    done_path = out / "gen" / "split" / str(job_id) / "text"
    done = {ln.split("\t", 1)[0] for ln in done_path.read_text(encoding="utf-8").splitlines()} \
        if done_path.exists() else set()
    n = decode_job(bot, str(out / "list.jsonl"), out / "gen", None, "raw", cfg.nj, job_id, cfg.batch_size,
                   progress_total=sum(k not in done for k in mine))
    logger.info("job %d/%d: decoded %d items", job_id, cfg.nj, n)
    if cfg.suite == "echat":
        voc = load_vocoder(cfg.vocoder, cfg.device)
        if voc is None:
            logger.warning("no --vocoder: spoken replies are not transcribed (consistency absent)")
        transcribe_replies(out / "gen" / "split" / str(job_id), voc, load_asr(cfg.reply_asr, bot, cfg.device),
                           out / "reply_wav", cfg.batch_size)


def _generated(cfg: RunConfig) -> dict[str, dict]:
    """key -> {reply, think, n_codes, transcript[, reply_form]} from every job's files."""
    from osum_echat.eval.score import read_kv

    gen: dict[str, dict] = {}
    for j in range(cfg.nj):
        d = Path(cfg.out) / "gen" / "split" / str(j)
        if not (d / "text").exists():
            raise FileNotFoundError(f"job {j} has no output in {d} (run the generation first)")
        think = read_kv(d / "think") if (d / "think").exists() else {}
        codes = read_kv(d / "codes") if (d / "codes").exists() else {}
        trans = KeyedJsonl(d / "transcripts.jsonl").rows
        for k, text in read_kv(d / "text").items():
            gen[k] = {"reply": text, "think": think.get(k),
                      "n_codes": len(codes.get(k, "").split()) if k in codes else None,
                      "transcript": trans.get(k, {}).get("transcript")}
            if "reply_form" in trans.get(k, {}):  # the reply as the reply ASR writes it (load_asr)
                gen[k]["reply_form"] = trans[k]["reply_form"]
    return gen


def _judge(cfg: RunConfig, items: list[dict], judge) -> None:
    """Fill ``item['judge']`` = {raw, score, parsed, judge, version} (cached in judge.jsonl)."""
    mod = SUITES[cfg.suite]
    if cfg.suite == "understanding":
        return
    prompts = echat_eval.load_rubric() if cfg.suite == "echat" else voicebench.load_prompts()
    cache = KeyedJsonl(Path(cfg.out) / "judge.jsonl")
    todo = []
    for it in items:
        if cfg.suite == "echat":
            p = (echat_eval.judge_prompt(it, prompts), "1-5")
        else:
            p = mod.judge_prompt(it, prompts)
        if p is None:
            continue
        ck = f"{it['key']}|{judge.name}|{prompts['version']}"
        if ck in cache.done:
            it["judge"] = cache.rows[ck]
        else:
            todo.append((it, ck, p))
    for i in tqdm(range(0, len(todo), cfg.judge_batch), desc="judge", unit="batch", leave=False):
        chunk = todo[i:i + cfg.judge_batch]
        kinds = {k for _, _, (_, k) in chunk}
        verdicts = []
        for kind in sorted(kinds):
            part = [c for c in chunk if c[2][1] == kind]
            verdicts += list(zip(part, judge.score([c[2][0] for c in part], kind)))
        for (it, ck, _), v in verdicts:
            row = {"raw": v.raw, "score": v.value, "parsed": v.parsed, "judge": judge.name,
                   "version": prompts["version"]}
            if v.raw is not None:  # the rule judge's absences are not cached (nothing to resume)
                cache.add(ck, row)
            it["judge"] = row


def finish(cfg: RunConfig, judge) -> dict:
    """Merge generations, score, judge, write items.jsonl + results.json + report + plots."""
    from osum_echat.eval.report import write_report

    out = Path(cfg.out)
    items = read_jsonl(out / "items.read.jsonl")
    gen = _generated(cfg)
    missing = [it["key"] for it in items if it["key"] not in gen]
    if missing:
        raise RuntimeError(f"{len(missing)} items were not generated (first: {missing[0]}); rerun the generation")
    mod = SUITES[cfg.suite]
    for it in items:
        it.update(gen[it["key"]])
        it["scores"] = mod.score(it, cfg.think) if cfg.suite == "echat" else mod.score(it)
    _judge(cfg, items, judge)
    results = {"suite": cfg.suite, "think": cfg.think, "judge": judge.name, "n": len(items),
               **mod.aggregate(items)}
    write_jsonl(out / "items.jsonl", items)
    write_report(out, cfg.suite, items, results, mod.headline(results))
    return results
