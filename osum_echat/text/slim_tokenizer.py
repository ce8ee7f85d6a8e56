"""A small-footprint tokenizer for inference: a Qwen-style byte-level BPE run by ``tiktoken``.

The HF fast tokenizer of the Qwen vocabulary holds ~230 MB once loaded (~300 MB at its peak);
``tiktoken`` holds the same 151,643 ranks in ~55 MB. Decoding needs only a small part of the
tokenizer API: ``tok(text, add_special_tokens=False)["input_ids"]`` (prompts, age forcing),
``decode(ids, skip_special_tokens=...)``, ``convert_tokens_to_ids``, ``unk_token_id`` and
``len(tok)``; :class:`SlimTokenizer` provides exactly these, with the ids and texts of the HF
tokenizer it is read from (``tests/text/test_slim_tokenizer.py``).

Only tokenizers for which the two algorithms are the same are accepted (else ValueError, and
the caller keeps the HF tokenizer): no normaliser, one regex ``Split`` then ``ByteLevel``
without its own regex, a plain BPE whose merge order is the rank order of the merged tokens
(true of every tokenizer converted from tiktoken ranks, Qwen's included) and whose whole-word
lookup comes first (``ignore_merges``, tiktoken's behaviour).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

logger = logging.getLogger(__name__)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable character -> the byte it stands for."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _check_layout(spec: dict, path: Path) -> str:
    """The Split regex of a tokenizer.json that tiktoken can run identically (else ValueError)."""
    pre, model = spec.get("pre_tokenizer") or {}, spec.get("model") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    ok = (spec.get("normalizer") is None and len(steps) == 2
          and steps[0].get("type") == "Split" and steps[0].get("behavior") == "Isolated"
          and not steps[0].get("invert") and "Regex" in (steps[0].get("pattern") or {})
          and steps[1].get("type") == "ByteLevel" and not steps[1].get("use_regex", True)
          and not steps[1].get("add_prefix_space", False)
          and (spec.get("decoder") or {}).get("type") == "ByteLevel"
          and model.get("type") == "BPE" and model.get("ignore_merges") and not model.get("dropout")
          and not model.get("continuing_subword_prefix") and not model.get("end_of_word_suffix"))
    if not ok:
        raise ValueError(f"{path}: not a regex-split byte-level BPE that tiktoken runs identically")
    return steps[0]["pattern"]["Regex"]


class SlimTokenizer:
    """Byte-level BPE on ``tiktoken`` with the HF tokenizer's ids, added tokens and specials."""

    unk_token_id = None

    def __init__(self, ranks: dict[bytes, int], pattern: str, added: Sequence[tuple[str, int, bool]]) -> None:
        import tiktoken

        self.added = {content: i for content, i, _ in added}
        self.special_ids = frozenset(i for _, i, special in added if special)
        # every added token (special or not) is matched whole in the text, as HF does
        self.enc = tiktoken.Encoding("slim", pat_str=pattern, mergeable_ranks=ranks,
                                     special_tokens=dict(self.added))
        self.size = max([len(ranks) - 1, *self.added.values()]) + 1

    @classmethod
    def from_folder(cls, folder: str | Path) -> "SlimTokenizer":
        """From the ``tokenizer.json`` of an HF tokenizer folder; ValueError when its algorithm
        is not the one tiktoken runs (see the module docstring)."""
        path = Path(folder) / "tokenizer.json"
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        pattern = _check_layout(spec, path)
        bd = _byte_decoder()
        vocab = spec["model"].pop("vocab")
        ranks = {bytes(bd[c] for c in piece): i for piece, i in vocab.items()}
        del vocab
        if sorted(ranks.values()) != list(range(len(ranks))):
            raise ValueError(f"{path}: BPE ids are not 0..N-1")
        last = -1
        for m in spec["model"].pop("merges"):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            r = ranks.get(bytes(bd[c] for c in a + b))
            if r is None or r < last:  # several splits of one token share its rank
                raise ValueError(f"{path}: merge order is not the rank order (not a tiktoken BPE)")
            last = r
        added = [(t["content"], int(t["id"]), bool(t.get("special"))) for t in spec.get("added_tokens", [])]
        if any(t.get("lstrip") or t.get("rstrip") or t.get("single_word") or t.get("normalized")
               for t in spec.get("added_tokens", [])):
            raise ValueError(f"{path}: added tokens with strip / single-word / normalized options")
        return cls(ranks, pattern, added)

    def __len__(self) -> int:
        return self.size

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        if add_special_tokens:
            raise ValueError("SlimTokenizer adds no special tokens (add_special_tokens=False only)")
        return {"input_ids": self.enc.encode(text, allowed_special="all")}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.special_ids]
        return self.enc.decode(ids, errors="replace")

    def convert_tokens_to_ids(self, token: str) -> int | None:
        """Id of an added token, or of a vocabulary piece in its byte-level spelling (``Ġhi``)."""
        if token in self.added:
            return self.added[token]
        bd = _byte_decoder()
        if not all(c in bd for c in token):
            return None
        try:
            return self.enc.encode_single_token(bytes(bd[c] for c in token))
        except KeyError:
            return None
