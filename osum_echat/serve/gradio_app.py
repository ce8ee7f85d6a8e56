"""Gradio demo: microphone / upload, task choice, think on/off, reply text + think + audio.

    app = build_app({"language_think": bot_a, "tag_think": bot_b})   # EChat objects
    app.launch(server_name="0.0.0.0", server_port=7860)

``build_app`` only builds the Blocks (no server), so it is testable; ``respond`` is the
plain function behind the button.
"""

from __future__ import annotations

import logging
from typing import Mapping, Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)

TASK_CHOICES = {
    "S2S (spoken reply)": "s2s",
    "S2T chat (text reply)": "s2t_chat",
    "ASR": "asr",
    "Understanding (instruction)": "understand",
    "TTS (text -> speech)": "tts",
    "T2T (text chat)": "t2t",
}
# OSUM mode (the base understanding model: text answers to speech only).
OSUM_TASK_CHOICES = {
    "ASR (speech recognition)": "asr",
    "SRWT (ASR with word timestamps)": "srwt",
    "VED (vocal event detection)": "ved",
    "SER (speech emotion recognition)": "ser",
    "SSR (speaking style recognition)": "ssr",
    "SGC (speaker gender)": "sgc",
    "SAP (speaker age)": "sap",
    "STTC (speech-to-text chat)": "sttc",
    "Own instruction": "understand",
}
MODES = {"echat": TASK_CHOICES, "osum": OSUM_TASK_CHOICES}
THINKING = {"s2s": "s2s_think", "s2t_chat": "s2t_think"}


def _to_16k(audio) -> Optional[torch.Tensor]:
    """Gradio audio (sample_rate, int16/float array) or a file path -> mono 16 kHz (N,)."""
    from osum_echat.audio.io import load_16k, resample

    if audio is None:
        return None
    if isinstance(audio, str):
        return load_16k(audio)
    sr, data = audio
    x = np.asarray(data)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / np.iinfo(x.dtype).max
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return resample(torch.from_numpy(x), int(sr), 16000)


def respond(bots: Mapping[str, object], model_tag: str, task_label: str, think: bool, audio,
            text: str, instruction: str, mode: str = "echat"):
    """-> (reply text, think text, (sample_rate, wav) or None, status line)."""
    bot = bots[model_tag]
    task = MODES[mode][task_label]
    if think and task in THINKING:
        task = THINKING[task]
    try:
        wav = _to_16k(audio)
        reply = bot.run(task, wav=wav, text=text or None, instruction=instruction or None)
    except ValueError as err:  # bad input: say so, keep serving
        return "", "", None, f"error: {err}"
    out_audio = (reply.sample_rate, reply.wav) if reply.wav is not None and len(reply.wav) else None
    t = reply.timings
    status = (f"{task}: {t.get('new_tokens', 0)} tokens, first token {t.get('first_token_ms', 0):.0f} ms, "
              f"{t.get('tokens_per_s', 0):.1f} tokens/s, {len(reply.speech_codes)} speech codes "
              f"({reply.stop_reason})")
    return reply.text, reply.think, out_audio, status


def build_app(bots: Mapping[str, object], title: str = "OSUM-EChat", mode: str = "echat"):
    """Gradio Blocks over one or more loaded EChat models (keyed by checkpoint tag).
    ``mode="osum"`` offers OSUM's eight understanding tasks (and an own instruction)."""
    import gradio as gr

    if not bots:
        raise ValueError("build_app needs at least one model")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    choices = MODES[mode]
    tags = list(bots)
    with gr.Blocks(title=title) as app:
        intro = ("Speech understanding: upload or record speech, pick a task." if mode == "osum"
                 else "Empathetic spoken chat: speak or type, pick a task.")
        gr.Markdown(f"# {title}\n{intro}")
        with gr.Row():
            with gr.Column():
                model_tag = gr.Dropdown(tags, value=tags[0], label="checkpoint")
                task = gr.Radio(list(choices), value=list(choices)[0], label="task")
                think = gr.Checkbox(value=False, label="think (S2S / S2T chat)")
                audio = gr.Audio(sources=["microphone", "upload"], type="numpy", label="speech input")
                text = gr.Textbox(label="text input (TTS / T2T)")
                instruction = gr.Textbox(label="instruction (understanding)")
                go = gr.Button("Run", variant="primary")
            with gr.Column():
                reply = gr.Textbox(label="reply")
                thought = gr.Textbox(label="think")
                speech = gr.Audio(label="spoken reply", type="numpy")
                status = gr.Textbox(label="status")
        go.click(lambda *a: respond(bots, *a, mode=mode), [model_tag, task, think, audio, text, instruction],
                 [reply, thought, speech, status])
    return app
