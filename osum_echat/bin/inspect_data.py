"""Print a few examples per task of a data list as rendered conversations, plus drop statistics.

    python -m osum_echat.bin.inspect_data --list data.list [--data_type raw|shard]
        [--tokenizer DIR] [-n 3] [--config conf.yaml] [--path_prefix_map OLD=NEW]
        [--think_style language|tag] [--path_root DIR] [--drops_out drops.jsonl]

Without --tokenizer the real Qwen2 BPE is rebuilt from dashscope's qwen.tiktoken when that is
installed (same ids as Qwen2.5), otherwise a small BPE is trained on the list's texts on the
fly (ids then mean nothing; the rendering is still right). Segments print as text; speech
input as ``[speech T frames]``, speech output as ``[codes N]``; supervised parts in ``⟦ ⟧``.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import defaultdict

from osum_echat.data.config import DataConfig
from osum_echat.data.drops import DropCounter, DropFile
from osum_echat.data.loader import build_renderer
from osum_echat.data.pipeline import StageContext, sample_stages
from osum_echat.data.sources import iter_unit, read_list
from osum_echat.model.batch import SpeechInSegment, SpeechOutSegment

logger = logging.getLogger("inspect_data")


def _tokenizer(path: str | None, texts: list[str]):
    if path:
        from osum_echat.text.tokenizer import load_tokenizer

        return load_tokenizer(path)
    from osum_echat.text.build_tokenizer import (
        build_qwen_tokenizer,
        find_qwen_tiktoken,
        train_bpe_tokenizer,
    )

    if find_qwen_tiktoken() is not None:
        logger.info("no --tokenizer: using the Qwen2 BPE rebuilt from dashscope's qwen.tiktoken")
        return build_qwen_tokenizer()
    logger.info("no --tokenizer and no qwen.tiktoken: training a small BPE on the list's texts")
    return train_bpe_tokenizer(texts or ["hello"], vocab_size=1000)


def render(segments, tok) -> str:
    """A conversation as one readable string."""
    parts = []
    for g in segments:
        if isinstance(g, SpeechInSegment):
            parts.append(f"[speech {int(g.feats.shape[0])} frames]")
        elif isinstance(g, SpeechOutSegment):
            parts.append(("⟦" if g.supervised else "") + f"[codes {len(g.ids)}]" + ("⟧" if g.supervised else ""))
        else:
            text = tok.decode(g.ids, skip_special_tokens=False)
            if g.no_loss:
                text += f" (no-loss positions {list(g.no_loss)})"
            parts.append(f"⟦{text}⟧" if g.supervised else text)
    return "".join(parts)


def path_root_hint(list_path: str, records: list[dict], total: int) -> str | None:
    """When most records' files are missing relative to the working directory but exist
    relative to the list's folder: the line telling the user to set data.path_root."""
    missing = [r["path"] for r in records if r.get("path") and not os.path.isabs(r["path"])]
    if not missing or len(missing) * 2 < max(total, 1):
        return None
    folder = os.path.dirname(os.path.abspath(list_path))
    there = sum(os.path.exists(os.path.join(folder, m)) for m in missing)
    if there * 2 < len(missing):
        return None
    return (f"{len(missing)}/{total} paths not found relative to CWD ({os.getcwd()}); they exist "
            f"relative to the list's folder — set data.path_root={folder} (or --path_root {folder})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", required=True)
    p.add_argument("--data_type", default="auto", choices=["auto", "raw", "shard"])
    p.add_argument("--tokenizer", default=None)
    p.add_argument("-n", type=int, default=3, help="examples per task")
    p.add_argument("--config", default=None, help="experiment YAML (its data/text sections are used)")
    p.add_argument("--path_prefix_map", action="append", default=[], help="OLD=NEW path prefix")
    p.add_argument("--path_root", default=None, help="folder for relative paths (data.path_root)")
    p.add_argument("--think_style", default=None, choices=["language", "tag"])
    p.add_argument("--drops_out", default=None, help="write every drop as a JSON line to this file")
    a = p.parse_args(argv)
    from osum_echat.bin.checks import need_file, need_path

    need_file(a.list, "--list")
    need_file(a.config, "--config")
    need_path(a.tokenizer, "--tokenizer")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg, think, style = DataConfig(), "language", {}
    if a.config:
        from osum_echat.config import load_config

        exp = load_config(a.config)
        cfg, think = exp.data, exp.text.think_style
        style = {"prompt_style": exp.text.prompt_style, "lowercase_labels": exp.text.lowercase_labels}
    cfg.data_type = a.data_type
    cfg.path_prefix_map.update(dict(x.split("=", 1) for x in a.path_prefix_map))
    if a.path_root is not None:
        cfg.path_root = a.path_root
    think = a.think_style or think
    drops = DropCounter(collect=True)
    units = read_list(a.list, cfg.path_prefix_map, drops, cfg.path_root)

    def samples(counter: DropCounter, limit: int | None = None):
        for i, u in enumerate(units[:limit]):
            yield from iter_unit(u, str(i), cfg.path_prefix_map, counter, cfg.data_type, cfg.path_root)

    # texts for the fallback tokenizer: a silent pass (its drops are counted below, once)
    raw = list(samples(DropCounter(quiet=True), 50)) if not a.tokenizer else []
    tok = _tokenizer(a.tokenizer, [s.txt for s in raw])
    ctx = StageContext(cfg=cfg, renderer=build_renderer(cfg, tok, think, **style), drops=drops, train=False)
    shown: dict[str, int] = defaultdict(int)
    total = 0
    for s in sample_stages(samples(drops), ctx):
        total += 1
        if shown[s.spec.name] >= a.n:
            continue
        shown[s.spec.name] += 1
        print(f"=== {s.key}  task {s.spec.name}  ({s.spec.family}/{s.spec.output_type})  "
              f"{s.length} positions, label {s.label_len} ids, codes {s.codes_len}")
        print(render(s.segments, tok))
        print()
    records = drops.take_records()
    if a.drops_out:
        DropFile(a.drops_out).write(records)
    print(f"kept {total} examples; per task shown: {dict(shown)}")
    print(f"drops: {drops.as_dict() or 'none'}" + (f" (every drop in {a.drops_out})" if a.drops_out else ""))
    hint = path_root_hint(a.list, records, total + drops.total())
    if hint:
        print(f"hint: {hint}")


if __name__ == "__main__":
    main()
