"""``voicebench`` suite: a local copy of VoiceBench (hlt-lab/voicebench) in its released layout.

Layout read (the Hugging Face dataset repository): ``DATA/<subset>/<split>-*.parquet`` with an
``audio`` column (``{"bytes", "path"}``), ``prompt`` and per-subset fields (``reference`` for
sd-qa / mmsu / openbookqa / bbh, ``id`` for bbh, ``key`` / ``instruction_id_list`` / ``kwargs``
for ifeval). A JSONL export ``DATA/<subset>/<split>.jsonl`` with ``audio`` as a file path (relative
to the file) is read too. Audio bytes are written to ``OUT/audio/<key>.wav`` for decoding.
Scorers: mcq (mmsu, openbookqa), bbh, ifeval, advbench refusal: rule; alpacaeval / commoneval /
wildvoice (1-5) and sd-qa (yes / no) need a judge. The overall score is the leaderboard's: the
mean over subsets, open-ended 1-5 scores multiplied by 20.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import yaml

from osum_echat.eval import bbh, ifeval, mcq
from osum_echat.eval.refusal import is_refusal
from osum_echat.eval.store import read_jsonl

logger = logging.getLogger(__name__)
NAME = "voicebench"
SUBSETS = ("alpacaeval", "commoneval", "wildvoice", "sd-qa", "mmsu", "openbookqa", "bbh", "ifeval", "advbench")
OPEN = ("alpacaeval", "commoneval", "wildvoice")
PROMPTS = Path(__file__).resolve().parents[2] / "conf" / "eval" / "voicebench_judge_v1.yaml"


def _rows_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit(f"{path}: reading parquet needs pyarrow (pip install pyarrow, requirements.txt)") from None
    return pq.read_table(path).to_pylist()


def _audio_bytes(audio, where: str) -> tuple[Optional[bytes], Optional[str]]:
    if isinstance(audio, dict):
        return audio.get("bytes"), audio.get("path")
    if isinstance(audio, str):
        return None, audio
    raise ValueError(f"{where}: audio must be {{bytes, path}} or a path, got {type(audio).__name__}")


def read(data: str | Path, out_dir: str | Path, subsets: Optional[list[str]] = None) -> list[dict]:
    """Items of every subset folder present (or ``subsets``) in ``data``; audio made local."""
    root, audio_dir = Path(data), Path(out_dir) / "audio"
    wanted = subsets or [s for s in SUBSETS if (root / s).is_dir()]
    if not wanted:
        raise FileNotFoundError(f"{root}: no VoiceBench subset folder ({', '.join(SUBSETS)})")
    items = []
    for sub in wanted:
        if sub not in SUBSETS:
            raise ValueError(f"unknown VoiceBench subset {sub!r}; known: {SUBSETS}")
        files = sorted((root / sub).glob("*.parquet")) + sorted((root / sub).glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"{root / sub}: no *.parquet or *.jsonl files")
        for f in files:
            split = f.name.split("-")[0] if f.suffix == ".parquet" else f.stem
            rows = _rows_parquet(f) if f.suffix == ".parquet" else read_jsonl(f)
            for i, r in enumerate(rows):
                items.append(_item(sub, split, i, r, f, audio_dir))
    return items


def _item(sub: str, split: str, i: int, r: dict, f: Path, audio_dir: Path) -> dict:
    where = f"{f} row {i}"
    if "prompt" not in r or "audio" not in r:
        raise ValueError(f"{where}: needs 'prompt' and 'audio'")
    key = f"{sub}-{split}-{i:05d}"
    data, path = _audio_bytes(r["audio"], where)
    if data is not None:
        audio_dir.mkdir(parents=True, exist_ok=True)
        wav = audio_dir / f"{key}.wav"
        if not wav.exists():
            wav.write_bytes(data)
    elif path:
        wav = Path(path) if Path(path).is_absolute() else f.parent / path
    else:
        raise ValueError(f"{where}: audio has neither bytes nor path")
    item = {"key": key, "suite": NAME, "category": sub, "split": split, "wav": str(wav), "prompt": r["prompt"]}
    for k in ("reference", "id", "instruction_id_list", "kwargs"):
        if k in r:
            v = r[k]
            item[k] = json.loads(v) if k == "kwargs" and isinstance(v, str) else v
    needs = {"mmsu": "reference", "openbookqa": "reference", "sd-qa": "reference", "bbh": "id",
             "ifeval": "instruction_id_list"}
    if sub in needs and item.get(needs[sub]) is None:
        raise ValueError(f"{where}: subset {sub} needs {needs[sub]!r}")
    return item


def decode_record(item: dict, think: bool) -> dict:
    task = "<S2TCHAT> <THINKER>" if think else "<S2TCHAT>"
    return {"key": item["key"], "wav": item["wav"], "task": task, "txt": ""}


def score(item: dict) -> dict:
    """Rule scores of one answered item (open-ended / sd-qa are left to the judge)."""
    sub, reply = item["category"], item.get("reply", "")
    if sub in ("mmsu", "openbookqa"):
        return {"mcq": mcq.score_choice(reply, item["reference"], item["key"])}
    if sub == "bbh":
        return {"bbh": bbh.score_bbh(reply, item["reference"], item["id"])}
    if sub == "ifeval":
        return {"ifeval": ifeval.check_item(reply, item["instruction_id_list"], item.get("kwargs") or [])}
    if sub == "advbench":
        return {"refusal": is_refusal(reply)}
    return {}


def judge_prompt(item: dict, prompts: dict) -> Optional[tuple[str, str]]:
    """(prompt, kind) for judged subsets, None for rule-scored ones."""
    if item["category"] in OPEN:
        return prompts["open"].format(prompt=item["prompt"], response=item.get("reply", "")), "1-5"
    if item["category"] == "sd-qa":
        return prompts["qa"].format(prompt=item["prompt"], reference=item["reference"],
                                    response=item.get("reply", "")), "yes-no"
    return None


def load_prompts(path: str | Path = PROMPTS) -> dict:
    p = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not all(k in p for k in ("version", "open", "qa")):
        raise ValueError(f"{path}: needs version, open and qa")
    return p


def aggregate(items: list[dict]) -> dict:
    """Per-subset scores on the leaderboard's scale and the overall score (subsets present)."""
    res: dict = {"by_category": {}}
    for sub in SUBSETS:
        sel = [it for it in items if it["category"] == sub]
        if not sel:
            continue
        row: dict = {"n": len(sel)}
        if sub in ("mmsu", "openbookqa", "bbh"):
            key = "mcq" if sub != "bbh" else "bbh"
            row["score"] = 100 * sum(it["scores"][key]["correct"] for it in sel) / len(sel)
            row["unparsed"] = sum(not it["scores"][key]["parsed"] for it in sel)
        elif sub == "ifeval":
            agg = ifeval.aggregate([it["scores"]["ifeval"] for it in sel])
            row.update(agg)
            row["score"] = agg.get("final")
            row["unscorable"] = sum(1 for it in sel if it["scores"]["ifeval"]["unknown"])
        elif sub == "advbench":
            row["score"] = 100 * sum(it["scores"]["refusal"] for it in sel) / len(sel)
        else:
            vals = [it["judge"]["score"] for it in sel if it.get("judge", {}).get("score") is not None]
            row["unparsed"] = sum(1 for it in sel if it.get("judge", {}).get("raw") is not None
                                  and it["judge"].get("score") is None)
            row["judged"] = len(vals)
            mean = sum(vals) / len(vals) if vals else None
            row["raw"] = mean
            row["score"] = None if mean is None else (20 * mean if sub in OPEN else 100 * mean)
        res["by_category"][sub] = row
    scored = {s: r["score"] for s, r in res["by_category"].items() if r.get("score") is not None}
    res["overall"] = sum(scored.values()) / len(scored) if scored else None
    res["overall_subsets"] = sorted(scored)
    res["overall_complete"] = len(scored) == len(SUBSETS)
    return res


def headline(res: dict) -> list[tuple[str, Optional[float], str]]:
    rows = []
    for s, r in res["by_category"].items():
        extra = "".join(f", {k}={r[k]}" for k in ("unparsed", "unscorable") if r.get(k))
        rows.append((f"{s} (n={r['n']}{extra})", r.get("score"), ""))
    rows.append((f"overall over {len(res['overall_subsets'])} subsets", res["overall"], ""))
    return rows
