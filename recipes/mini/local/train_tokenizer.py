"""Train the mini recipe's byte-level BPE on the corpus text (labels, questions, think strings,
system prompts and instructions) with the tags as single tokens. Chinese gets one token per
character (labels stay compositional: one syllable of speech, one token). Each system prompt
and task instruction is one token too (``--prompt_tokens``): every example starts with ~40-70
prompt tokens otherwise, which would cost the CPU more than the speech and the answer.

    python recipes/mini/local/train_tokenizer.py --data_dir recipes/mini/data --out_dir DIR \
        [--vocab_size 1024]

Prints the size to pass as ``model.llm.vocab_size`` (the tokenizer length rounded up to 64)
and writes it to ``DIR/vocab_size``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import vocab as V  # noqa: E402
import yaml  # noqa: E402

from osum_echat.data import render  # noqa: E402
from osum_echat.text import prompts as P  # noqa: E402
from osum_echat.text.build_tokenizer import train_bpe_tokenizer  # noqa: E402


def corpus_texts(data_dir: Path) -> list[str]:
    texts: list[str] = []
    for path in sorted(data_dir.glob("train/*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                extra = rec.get("extra") or {}
                if "counterfactual" in extra:  # think-following copies: the same strings again
                    continue
                texts.append(rec.get("txt", ""))
                texts += [str(extra[k]) for k in ("think_str", "question") if k in extra]
    texts += list(P.SYSTEM_PROMPTS.values()) * 300  # every example starts with one: merge them
    with open(ROOT / "conf/prompts/understanding.yaml", encoding="utf-8") as f:
        texts += [s for items in yaml.safe_load(f).values() for s in items]
    texts += [lab for lab, _, _ in render.TAG_THINK_SLOTS] + [render.TAG_THINK_CLOSE, "用户说的话是", "推测使用的回复情感为"]
    return [t for t in texts if t]


def prompt_strings() -> list[str]:
    """The system prompts and task instructions: fixed strings that start every example."""
    with open(ROOT / "conf/prompts/understanding.yaml", encoding="utf-8") as f:
        instructions = [s for items in yaml.safe_load(f).values() for s in items]
    return list(P.SYSTEM_PROMPTS.values()) + sorted(set(instructions))


def special_tags() -> list[str]:
    answer = [f"<{e}>" for e in render.ANSWER_EMOTIONS]
    return [P.THINK_OPEN, P.THINK_CLOSE, P.UNKNOWN_TAG, *V.TAGS, *answer, "<OTHER>"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--vocab_size", type=int, default=1024)
    p.add_argument("--prompt_tokens", choices=["true", "false"], default="true",
                   help="one token per system prompt and per instruction (short sequences)")
    a = p.parse_args(argv)
    extra = special_tags() + (prompt_strings() if a.prompt_tokens == "true" else [])
    tok = train_bpe_tokenizer(corpus_texts(Path(a.data_dir)), a.vocab_size, a.out_dir, extra,
                              split_cjk=True)
    size = (len(tok) + 63) // 64 * 64
    Path(a.out_dir, "vocab_size").write_text(f"{size}\n")
    print(size)


if __name__ == "__main__":
    main()
