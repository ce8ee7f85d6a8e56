"""Build tokenizers without a model hub: a small byte-level BPE trained on a corpus (tests, the
mini recipe), and the real Qwen2 BPE from the ``qwen.tiktoken`` ranks that ship in the PyPI
package ``dashscope==2.0.2`` with Qwen2.5's added tokens (tests that need real Qwen ids)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterable

from osum_echat.text import prompts

SPECIALS = [prompts.ENDOFTEXT, prompts.IM_START, prompts.IM_END]
# Qwen2.5's added tokens after the 151,643 BPE ranks, in id order (151643-151664), with the
# ``special`` flag of its tokenizer_config.json: the last eight (tool call, fill-in-the-middle,
# repository markers) are plain added tokens, matched whole but not special.
QWEN25_ADDED_TOKENS: list[tuple[str, bool]] = [
    *((s, True) for s in SPECIALS),
    *((f"<|{name}|>", True) for name in (
        "object_ref_start", "object_ref_end", "box_start", "box_end", "quad_start", "quad_end",
        "vision_start", "vision_end", "vision_pad", "image_pad", "video_pad")),
    ("<tool_call>", False), ("</tool_call>", False),
    *((f"<|{name}|>", False) for name in (
        "fim_prefix", "fim_middle", "fim_suffix", "fim_pad", "repo_name", "file_sep")),
]
# Upstream OSUM-EChat adds this pad token after them (id 151665); our batches never embed
# padding, so it is optional (``build_qwen_tokenizer(upstream_pad=True)``).
UPSTREAM_PAD = "[PAD]"
# The pre-tokenisation pattern of Qwen2's BPE.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CJK_CHAR = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _wrap(tk, out_dir: str | Path | None, pad_token: str = prompts.ENDOFTEXT, extra_special: list[str] = ()):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token=prompts.IM_END, pad_token=pad_token,
        **({"extra_special_tokens": list(extra_special)} if extra_special else {}),
    )
    tok.chat_template = CHATML_TEMPLATE
    tok.padding_side = "right"
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(out_dir))
    return tok


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, out_dir: str | Path | None = None,
    extra_tokens: Iterable[str] = (),
    split_cjk: bool = False,
):
    """A byte-level BPE trained on ``texts`` with the Qwen pre-tokeniser and ChatML specials.

    ``split_cjk`` isolates every CJK character before the Qwen pattern applies, so no merge
    spans two of them: one token per character (small corpora, where whole Chinese phrases
    would otherwise become single tokens).

    The specials get the ids right after the learned vocabulary, in the Qwen order
    (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``). ``extra_tokens`` (e.g. tags such
    as ``<think>``) become whole, non-special tokens so that they are cheap to predict.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        *([pre_tokenizers.Split(Regex(CJK_CHAR), behavior="isolated")] if split_cjk else []),
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False, special_tokens=[],
    )
    tk.train_from_iterator(list(texts), trainer=trainer)
    if extra_tokens:
        tk.add_tokens([AddedToken(t, special=False, normalized=False) for t in extra_tokens])
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return _wrap(tk, out_dir)


def find_qwen_tiktoken() -> Path | None:
    """Path of ``qwen.tiktoken`` inside an installed dashscope package, or None."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "qwen.tiktoken"
    return path if path.is_file() else None


def build_qwen_tokenizer(tiktoken_file: str | Path | None = None, out_dir: str | Path | None = None,
                         upstream_pad: bool = False):
    """The Qwen2.5 tokenizer: the Qwen2 BPE (151,643 ranks) and Qwen2.5's 22 added tokens.

    Every id, ``len(tokenizer)`` (151,665) and the ``special`` flags equal those of
    Qwen2.5's own tokenizer (:data:`QWEN25_ADDED_TOKENS`); pad is ``<|endoftext|>`` and eos
    ``<|im_end|>`` as there. ``upstream_pad`` also adds upstream OSUM-EChat's ``[PAD]`` (id
    151,665) as the pad token. Raises FileNotFoundError when no ``qwen.tiktoken`` is available
    (install ``dashscope==2.0.2 --no-deps``).
    """
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = Path(tiktoken_file) if tiktoken_file else find_qwen_tiktoken()
    if path is None or not path.is_file():
        raise FileNotFoundError("qwen.tiktoken not found; pip install --no-deps dashscope==2.0.2")
    tk = TikTokenConverter(vocab_file=str(path), pattern=QWEN_PATTERN).converted()
    # Added one by one before wrapping, so the ids follow this order (not eos/pad order).
    for content, special in QWEN25_ADDED_TOKENS + ([(UPSTREAM_PAD, True)] if upstream_pad else []):
        token = AddedToken(content, special=special, normalized=False)
        (tk.add_special_tokens if special else tk.add_tokens)([token])
    # as in Qwen2.5's config: every special added token but <|endoftext|> (the pad) is listed
    extra = [c for c, special in QWEN25_ADDED_TOKENS if special and c != prompts.ENDOFTEXT]
    return _wrap(tk, out_dir, UPSTREAM_PAD if upstream_pad else prompts.ENDOFTEXT, extra)


def build_qwen_slim_tokenizer(tiktoken_file: str | Path | None = None):
    """:func:`build_qwen_tokenizer`'s ids and texts as a :class:`~osum_echat.text.slim_tokenizer.SlimTokenizer`
    (tiktoken, ~75 MB instead of ~225 MB; the decoding subset of the tokenizer API)."""
    from tiktoken.load import load_tiktoken_bpe

    from osum_echat.text.slim_tokenizer import SlimTokenizer

    path = Path(tiktoken_file) if tiktoken_file else find_qwen_tiktoken()
    if path is None or not path.is_file():
        raise FileNotFoundError("qwen.tiktoken not found; pip install --no-deps dashscope==2.0.2")
    ranks = load_tiktoken_bpe(str(path))
    added = [(content, len(ranks) + i, special) for i, (content, special) in enumerate(QWEN25_ADDED_TOKENS)]
    return SlimTokenizer(ranks, QWEN_PATTERN, added)
