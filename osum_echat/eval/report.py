"""Reports of an evaluation run: ``results.json``, ``report.md`` (tables, published figures
side by side) and PNG plots (matplotlib, Agg backend: no display needed).

Plots: ``plot_categories.png`` (per-category bars), ``plot_asr.png`` (ASR error rates,
understanding), ``confusion_<group>.png`` (tag confusion matrices, understanding),
``judge_hist.png`` (histogram of judge scores, when any).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import yaml

logger = logging.getLogger(__name__)
PUBLISHED = Path(__file__).resolve().parents[2] / "conf" / "eval" / "published.yaml"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bars(path: Path, names: list[str], values: list[float], title: str, ylabel: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(names) + 2), 3.5))
    ax.bar(names, values, color="#4c72b0")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(path: Path, confusion: dict[str, dict[str, int]], title: str) -> None:
    plt = _plt()
    refs = sorted(confusion)
    hyps = sorted({h for row in confusion.values() for h in row} | set(refs))
    m = [[confusion[r].get(h, 0) for h in hyps] for r in refs]
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(hyps), 1 + 0.6 * len(refs)))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(hyps)), hyps, rotation=45, ha="right")
    ax.set_yticks(range(len(refs)), refs)
    ax.set_xlabel("hypothesis")
    ax.set_ylabel("reference")
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_hist(path: Path, scores: list[float], title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.hist(scores, bins=[0.5, 1.5, 2.5, 3.5, 4.5, 5.5], rwidth=0.8, color="#55a868")
    ax.set_xlabel("judge score")
    ax.set_ylabel("items")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def make_plots(out: Path, suite: str, items: list[dict], results: dict) -> list[str]:
    """Write the suite's plots; returns their file names."""
    files = []
    if suite == "understanding":
        accs = {k[4:]: 100 * v["accuracy"] for k, v in results.items() if k.startswith("tag_")}
        rates = {k.upper(): 100 * v["rate"] for k, v in results.get("asr", {}).items()}
        if accs:
            plot_bars(out / "plot_categories.png", list(accs), list(accs.values()),
                      "understanding: tag accuracy per group", "accuracy %")
            files.append("plot_categories.png")
        if rates:  # own figure: error rates can pass 100 %
            plot_bars(out / "plot_asr.png", list(rates), list(rates.values()), "understanding: ASR error rates", "%")
            files.append("plot_asr.png")
        for k, v in results.items():
            if k.startswith("tag_"):
                plot_confusion(out / f"confusion_{k[4:]}.png", v["confusion"], f"{k[4:]} confusion")
                files.append(f"confusion_{k[4:]}.png")
    else:
        cats = results["by_category"]
        if suite == "echat":
            metric = {c: (r["think_names"]["accuracy"] * 100 if "think_names" in r else
                          (r["judge"]["score_100"] or 0.0)) for c, r in cats.items()}
            label = "think names the label (%)" if any("think_names" in r for r in cats.values()) \
                else "judge score x 20"
        else:
            metric = {c: r.get("score") or 0.0 for c, r in cats.items()}
            label = "score (leaderboard scale)"
        if metric:
            plot_bars(out / "plot_categories.png", list(metric), list(metric.values()), f"{suite}: per category", label)
            files.append("plot_categories.png")
    scores = [it["judge"]["score"] for it in items if it.get("judge", {}).get("score") is not None]
    judged_suite = suite == "echat" or any(it["category"] in ("alpacaeval", "commoneval", "wildvoice") for it in items)
    if scores and judged_suite:
        plot_hist(out / "judge_hist.png", scores, f"{suite}: judge scores (n={len(scores)})")
        files.append("judge_hist.png")
    return files


def published_lines(suite: str, results: dict, path: Path = PUBLISHED) -> list[str]:
    """Markdown table of published figures beside this run's, with a comparability column."""
    pub = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    rows = []
    if suite == "echat":
        ours = {c: r["judge"]["score_100"] for c, r in results["by_category"].items() if c != "all"}
        rows += ["| source | judge | " + " | ".join(ours or ["-"]) + " | comparable |",
                 "|---|---|" + "---|" * (len(ours) or 1) + "---|",
                 f"| this run | {results['judge']} | " + " | ".join(_f(v) for v in ours.values()) +
                 " | - |"]
        for p in pub.get("echat", []):
            rows.append(f"| {p['model']}: {p['source']} | {p['judge']} | "
                        + " | ".join(_f(p["scores"].get(c)) for c in ours) +
                        " | no: EChat-eval is unreleased (different items) and the judge differs |")
    elif suite == "voicebench":
        rows += ["| model | overall | comparable |", "|---|---|---|",
                 f"| this run ({results['judge']}) | {_f(results['overall'])} | - |"]
        same = results["overall_complete"] and results["judge"].startswith("openai:")
        for p in pub.get("voicebench", []):
            for model, v in p["overall"].items():
                why = "yes (all 9 subsets, GPT judge)" if same else \
                    "no: " + ("subsets missing" if not results["overall_complete"] else "different judge")
                rows.append(f"| {model} ({p['source']}) | {_f(v)} | {why} |")
    return rows


def _f(v: Optional[float]) -> str:
    if v is None:
        return "absent"
    return str(v) if isinstance(v, int) else f"{v:.2f}"


def write_report(out: Path, suite: str, items: list[dict], results: dict, headline: list) -> None:
    results["plots"] = make_plots(out, suite, items, results)
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    lines = [f"# {suite} evaluation", "", f"items: {results['n']} · judge: {results['judge']} · "
             f"think: {'on' if results.get('think') else 'off'}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_f(v)}{(' ' + unit) if v is not None and unit else ''} |" for name, v, unit in headline]
    pub = published_lines(suite, results)
    if pub:
        lines += ["", "## Published figures", ""] + pub
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in results["plots"]]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
