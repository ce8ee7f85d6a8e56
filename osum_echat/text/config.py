"""Text configuration (the ``text:`` section)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TextConfig:
    # A local HF tokenizer folder or a hub id (downloaded through huggingface_hub; offline
    # machines must pass a folder).
    tokenizer: str = "Qwen/Qwen2.5-3B-Instruct"
    # Chain-of-thought style of think tasks: 'language' (free text, language_think_final.pt)
    # or 'tag' (the fixed Chinese template of tag_think_final.pt).
    think_style: str = "language"

    def validate(self) -> None:
        if self.think_style not in ("language", "tag"):
            raise ValueError(f"think_style must be 'language' or 'tag', got {self.think_style!r}")
