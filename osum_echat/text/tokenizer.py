"""Tokenizer loading and the special ids, looked up by string (never literals in code)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from osum_echat.text import prompts

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "chat_template.jinja", "generation_config.json"]


class OfflineModelError(OSError):
    """A hub id was given but the files are not cached and the network is off."""


def resolve_hf_folder(path_or_id: str, allow_patterns: list[str] | None = None) -> Path:
    """A local folder as is; otherwise a hub id fetched (or found in the cache) via huggingface_hub.

    With HF_HUB_OFFLINE=1 and nothing cached this raises :class:`OfflineModelError` that says
    what to do, instead of a retry loop or a cryptic message.
    """
    local = Path(path_or_id).expanduser()
    if local.is_dir():
        return local
    if local.exists() or path_or_id.startswith(("/", "./", "../")):
        raise FileNotFoundError(f"{path_or_id} is not a folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=path_or_id, allow_patterns=allow_patterns))
    except LocalEntryNotFoundError as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        raise OfflineModelError(
            f"cannot fetch {path_or_id!r} from the Hugging Face hub"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''} and it is not in the local cache. "
            f"Download it on a connected machine (e.g. `hf download {path_or_id}`) and pass the "
            f"local folder instead."
        ) from err


def load_tokenizer(path_or_id: str, slim: bool = False):
    """HF tokenizer from a local folder or a hub id (tokenizer files only). ``slim``: a
    :class:`~osum_echat.text.slim_tokenizer.SlimTokenizer` with the same ids and texts (~150 MB
    less; only the API decoding uses) when the folder's algorithm allows, else the HF one."""
    folder = resolve_hf_folder(path_or_id, allow_patterns=TOKENIZER_FILES)
    if slim:
        from osum_echat.text.slim_tokenizer import SlimTokenizer

        try:
            return SlimTokenizer.from_folder(folder)
        except (ValueError, OSError, KeyError) as err:
            logger.info("slim tokenizer not used (%s): loading the HF tokenizer", err)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.padding_side = "right"
    return tok


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the ChatML specials and fixed pieces, read from the tokenizer."""

    im_start: int
    im_end: int
    endoftext: int
    text_vocab_size: int  # rows of lm_head; offset of speech ids in the joint label space

    @classmethod
    def from_tokenizer(cls, tok, text_vocab_size: int | None = None) -> "SpecialIds":
        ids = {}
        for name, s in (("im_start", prompts.IM_START), ("im_end", prompts.IM_END),
                        ("endoftext", prompts.ENDOFTEXT)):
            i = tok.convert_tokens_to_ids(s)
            if i is None or i == tok.unk_token_id or i < 0:
                raise ValueError(f"tokenizer has no special token {s!r}")
            ids[name] = int(i)
        vocab = text_vocab_size if text_vocab_size is not None else len(tok)
        if vocab < len(tok):
            raise ValueError(f"text vocab size {vocab} < tokenizer size {len(tok)}")
        return cls(text_vocab_size=vocab, **ids)


def encode(tok, text: str) -> list[int]:
    """Token ids of ``text`` with special tokens parsed and nothing added (no BOS/EOS)."""
    return list(tok(text, add_special_tokens=False)["input_ids"])
