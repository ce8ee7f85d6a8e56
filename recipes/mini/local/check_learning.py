"""Did the mini model learn? Compares the final model with an untrained (random) one and
writes the results table (markdown + JSON). Exits 1 when the model is not better.

    python recipes/mini/local/check_learning.py --exp EXP [--mode quick|full] [--out EXP/results.md]

Checks: (1) the stage-1 validation loss at its end is below 0.6 x the first training loss (the
loss of the randomly initialised model, ~ln(vocab)); (2) gender accuracy is above the untrained
model's; (3) ASR CER is below the untrained model's CER (full mode: by at least 0.1 and below
1.0; quick mode only "below": a few hundred steps teach the tags before the transcripts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROWS = [("asr_cer", "ASR CER (held-out voices) ↓", "cer"), ("asr_wer", "ASR WER ↓", "wer"),
        ("gender_tag", "gender accuracy", "accuracy"), ("age_tag", "age-group accuracy (chance 33 %)", "accuracy"),
        ("emotion_tag", "emotion-style accuracy (chance 33 %)", "accuracy"),
        ("chat_exact", "S2T chat reply exact match", "accuracy"),
        ("think_exact", "S2T think-chat reply exact match", "accuracy"),
        ("t2t_exact", "T2T reply exact match", "accuracy"), ("s2s_exact", "S2S reply text exact match", "accuracy"),
        ("s2sthink_exact", "S2S+think (empathetic) reply text exact match", "accuracy")]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def losses(model_dir: Path) -> tuple[float | None, float | None]:
    """(first training loss, last CV loss) from the trainer's metrics.jsonl."""
    first = cv = None
    p = model_dir / "metrics.jsonl"
    if not p.is_file():
        return None, None
    for line in p.read_text().splitlines():
        rec = json.loads(line)
        if first is None and "loss" in rec and "cv" not in rec:
            first = rec["loss"]
        c = rec.get("cv")
        if isinstance(c, dict) and c:
            if "all" in c:
                cv = c["all"]["loss"]
            else:  # per family: token-weighted mean
                tok = sum(v.get("tokens", 1) for v in c.values())
                cv = sum(v["loss"] * v.get("tokens", 1) for v in c.values()) / max(tok, 1)
    return first, cv


def fmt(s: dict | None, key: str) -> str:
    if not s:
        return "-"
    return f"{100 * s[key]:.1f} %" + (f" (n={s['n']})" if "n" in s else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True)
    p.add_argument("--mode", default="full")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    exp = Path(a.exp)
    tr, un = load(exp / "eval/trained/results.json"), load(exp / "eval/untrained/results.json")
    lines = [f"| metric ({a.mode} run) | final model | untrained |", "|---|---|---|"]
    for key, name, field in ROWS:
        if key in tr or key in un:
            lines.append(f"| {name} | {fmt(tr.get(key), field)} | {fmt(un.get(key), field)} |")
    for key in ("s2s_codes", "s2sthink_codes", "tts_codes"):
        if key in tr:
            lines.append(f"| {key.split('_')[0]}: utterances with speech codes (WAVs in eval/trained/wav) "
                         f"| {tr[key]['with_codes']} / {tr[key]['n']} | - |")
    first, cv = losses(exp / "stage1")
    lines.append(f"| stage-1 loss: first step → final CV | {first if first is None else round(first, 3)} → "
                 f"{cv if cv is None else round(cv, 3)} | - |")
    for n in (2, 3):
        f2, c2 = losses(exp / f"stage{n}")
        if c2 is not None:
            lines.append(f"| stage-{n} loss: first step → final CV | {round(f2, 3)} → {round(c2, 3)} | - |")
    failures = []
    cer_t = tr.get("asr_cer", {}).get("cer")
    cer_u = un.get("asr_cer", {}).get("cer", 1.0)
    margin = 0.0 if a.mode == "quick" else 0.1
    if cer_t is None or not (cer_t < cer_u - margin and (a.mode == "quick" or cer_t < 1.0)):
        failures.append(f"ASR CER {cer_t} not below the untrained {cer_u} - {margin}")
    if first is None or cv is None or not cv < 0.6 * first:
        failures.append(f"stage-1 CV loss {cv} not below 0.6 x the first loss {first}")
    g_t, g_u = tr.get("gender_tag", {}).get("accuracy"), un.get("gender_tag", {}).get("accuracy", 0.5)
    if g_t is None or not g_t > g_u:
        failures.append(f"gender accuracy {g_t} not above the untrained {g_u}")
    verdict = "PASS: the model learned" if not failures else "FAIL: " + "; ".join(failures)
    text = "\n".join(lines) + f"\n\n{verdict}\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")
        Path(a.out).with_suffix(".json").write_text(json.dumps(
            {"mode": a.mode, "trained": tr, "untrained": un, "stage1_first_loss": first, "stage1_cv_loss": cv,
             "pass": not failures, "failures": failures}, ensure_ascii=False, indent=1), encoding="utf-8")
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
