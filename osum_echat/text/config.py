"""Text configuration (the ``text:`` section)."""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_STYLES = ("chatml", "plain")


@dataclass
class TextConfig:
    # A local HF tokenizer folder or a hub id (downloaded through huggingface_hub; offline
    # machines must pass a folder).
    tokenizer: str = "Qwen/Qwen2.5-3B-Instruct"
    # Chain-of-thought style of think tasks: 'language' (free text, language_think_final.pt)
    # or 'tag' (the fixed Chinese template of tag_think_final.pt).
    think_style: str = "language"
    # How a conversation is laid out: 'chatml' (OSUM-EChat: system prompt, ChatML turns, answers
    # end with <|im_end|>) or 'plain' (OSUM: instruction, speech, answer, <|endoftext|>; no
    # system prompt, no chat template, no history).
    prompt_style: str = "chatml"
    # Lower-case every supervised text, tags included (OSUM's training labels); otherwise only
    # the plain transcription task is lower-cased.
    lowercase_labels: bool = False
    # Inference (EChat.from_config) loads the tokenizer as a SlimTokenizer (tiktoken: same ids
    # and texts, ~150 MB less) when the folder's BPE allows it; training always uses HF's.
    slim_tokenizer: bool = True

    def validate(self) -> None:
        if self.think_style not in ("language", "tag"):
            raise ValueError(f"think_style must be 'language' or 'tag', got {self.think_style!r}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
