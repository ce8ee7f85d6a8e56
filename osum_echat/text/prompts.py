"""System prompts and ChatML pieces: the one home for the conditioning strings.

The system prompt bodies are the *training* strings of the released OSUM-EChat checkpoints
(docs/upstream_compat.md, "Prompts") and must stay byte-exact: the weights were trained on
them. Upstream's inference used a corrupted copy for ASR and dropped the user start for S2T
think; we use the training strings everywhere (training and inference share this module).
"""

from __future__ import annotations

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"

# ChatML pieces (as strings; tokenised with special-token parsing on).
USER_START = f"{IM_START}user\n"
ASSISTANT_START = f"{IM_END}\n{IM_START}assistant\n"
TURN_END = f"{IM_END}\n"

THINK_OPEN = "<think>"
THINK_CLOSE = "<think end>"
UNKNOWN_TAG = "<&&>"  # "don't care" slot of the tag-think template

SYSTEM_PROMPTS: dict[str, str] = {
    "s2s": (
        "You are OSUM-chat, a speech-to-speech dialogue assistant by ASLP Lab. You understand "
        "both the meaning and paralinguistic cues in speech then respond with appropriate text "
        "and emotionally matching synthetic speech."
    ),
    "s2s_think": (
        "You are OSUM-chat, a speech-to-speech dialogue assistant by ASLP Lab. You understand "
        "both the meaning and paralinguistic cues in speech. Before responding, first output "
        "your reasoning inside <think>...</think end>, analyzing the user\u2019s words and vocal "
        "cues. Then generate a reply with appropriate text and emotionally matched synthetic "
        "speech."
    ),
    "s2s_stream": (
        "You are OSUM-chat, a speech-to-speech dialogue assistant by ASLP Lab. You analyze "
        "speech (content + paralinguistic cues) and respond with interleaved text and "
        "emotionally-matched synthetic speech."
    ),
    "s2t_chat": (
        "You are OSUM-chat, a speech-to-text dialogue assistant by ASLP Lab. You understand "
        "both the meaning and paralinguistic cues in speech then respond exclusively with "
        "appropriate text."
    ),
    "s2t_think": (
        "You are OSUM-chat, a thinking-enabled speech-to-text dialogue assistant by ASLP Lab. "
        "You not only comprehend the semantic meaning and paralinguistic cues in speech but "
        "also engage in deliberate reasoning to process such information. Based on this "
        "thinking process, you then respond exclusively with appropriate text."
    ),
    "t2t": (
        "You are OSUM-chat, a text-to-text dialogue assistant by ASLP Lab. You understand user "
        "input in text then respond exclusively with appropriate text."
    ),
    "understand": (
        "You are OSUM-chat, an audio understanding assistant by ASLP Lab. You can transcribe "
        "speech accurately and analyze paralinguistic cues to provide precise text responses."
    ),
    "tts": (
        "You are OSUM-chat, a speech synthesis assistant by ASLP Lab. You generate natural and "
        "fluent speech from text input."
    ),
    "tts_stream": (
        "You are OSUM-chat, a speech synthesis assistant by ASLP Lab. You generate natural "
        "speech from text input and output both audio and the original text in interleaved "
        "format."
    ),
    "qwen_default": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
}


def system_block(key: str) -> str:
    """``<|im_start|>system\\n{body}<|im_end|>\\n`` for a prompt key of SYSTEM_PROMPTS."""
    try:
        body = SYSTEM_PROMPTS[key]
    except KeyError:
        raise KeyError(f"unknown system prompt {key!r}; known: {sorted(SYSTEM_PROMPTS)}") from None
    return f"{IM_START}system\n{body}{TURN_END}"


def wrap_think(think: str, answer: str) -> str:
    """The supervised text of a think task: ``<think>{think}<think end>{answer}``."""
    return f"{THINK_OPEN}{think}{THINK_CLOSE}{answer}"


def split_think(text: str) -> tuple[str, str]:
    """Inverse of :func:`wrap_think`: (think, answer); think is '' when there is none."""
    start = text.find(THINK_OPEN)
    end = text.find(THINK_CLOSE)
    if start == -1 or end == -1 or end < start:
        return "", text
    return text[start + len(THINK_OPEN) : end], text[end + len(THINK_CLOSE) :]
