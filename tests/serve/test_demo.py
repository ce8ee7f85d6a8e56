"""The gradio app builds without launching; its handler answers and reports bad input."""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "generate"))
from gen_helpers import make_bot  # noqa: E402


def test_build_app_and_respond(tiny_tokenizer):
    import gradio as gr

    from osum_echat.serve.gradio_app import build_app, respond

    bots = {"language_think": make_bot(tiny_tokenizer, ["generate.max_new_tokens=4"])}
    app = build_app(bots)
    assert isinstance(app, gr.Blocks)
    audio = (16000, (0.1 * np.random.default_rng(0).standard_normal(16000) * 32767).astype(np.int16))
    text, think, wav, status = respond(bots, "language_think", "S2T chat (text reply)", True, audio, "", "")
    assert isinstance(text, str) and "s2t_think" in status and wav is None
    text, think, wav, status = respond(bots, "language_think", "TTS (text -> speech)", False, None, "", "")
    assert status.startswith("error:")
