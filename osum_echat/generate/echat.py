"""``EChat``: every task from one object, prompts built by the training code path.

    bot = EChat.from_pretrained("language_think_final.pt", config="conf/model/osum_echat_3b.yaml",
                                tokenizer="/models/Qwen2.5-3B-Instruct", device="auto", dtype="bf16",
                                token2wav_dir="/models/CosyVoice-300M-25Hz")
    bot.asr("a.wav").text
    bot.understand("a.wav", "请识别说话人的情感。").text
    bot.chat("a.wav", think=True)           # S2T chat (think / no think)
    bot.s2s("a.wav", think=True)            # text (+ think) + speech codes (+ wav)
    bot.speak("你好")                        # TTS codes (+ wav)
    bot.text_chat("你好")                    # T2T
    with bot.session() as s: s.s2s("turn1.wav"); s.s2s("turn2.wav")

Prompts come from ``TaskSpec.build(sample, renderer, rng, with_target=False)`` (the same
segments as training, docs/data.md §2); nothing here re-types a prompt.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import torch

from osum_echat.audio.features import features_from_wav
from osum_echat.data.render import Renderer
from osum_echat.data.sample import HistoryItem, Sample
from osum_echat.data.tasks import TaskSpec, canonical_task, get_spec
from osum_echat.generate.config import GenerateConfig
from osum_echat.generate.decoder import Decoder, Processor, Request
from osum_echat.generate.reply import Event, Reply

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "conf" / "model" / "osum_echat_3b.yaml"
WavLike = Union[str, Path, torch.Tensor]
features_of = features_from_wav  # the old name of osum_echat.audio.features.features_from_wav

# Short task names of the CLIs -> task tags of the catalogue.
TASKS = {
    "asr": "<TRANSCRIBE>",
    "understand": "<TRANSCRIBE>",  # with an instruction (task tag only picks the default one)
    "s2t_chat": "<S2TCHAT>",
    "s2t_think": "<S2TCHAT> <THINKER>",
    "tts": "<TEXT2TOKEN>",
    "t2t": "<TEXT2TEXT>",
    "s2s": "<S2TCHAT> <TEXT2TOKEN>",
    "s2s_think": "<S2TCHAT> <TEXT2TOKEN> <THINK>",
    # OSUM's eight tasks (asr above): timestamps, events, emotion, style, gender, age, chat
    "srwt": "<TRANSCRIBE> <ALIGN>",
    "ved": "<TRANSCRIBE> <CAPTION>",
    "ser": "<TRANSCRIBE> <EMOTION>",
    "ssr": "<TRANSCRIBE> <STYLE>",
    "sgc": "<TRANSCRIBE> <GENDER>",
    "sap": "<TRANSCRIBE> <AGE>",
    "sttc": "<TRANSCRIBE> <S2TCHAT>",
}
# Default model config per family (``--model`` of the CLIs).
MODEL_CONFIGS = {"echat": DEFAULT_CONFIG, "osum": REPO / "conf" / "model" / "osum_7b.yaml"}


def policy_name(spec: TaskSpec) -> str:
    """Which sampling policy of :class:`GenerateConfig` a task uses."""
    if spec.text_input:
        return "tts"
    if spec.speech_out:
        return "s2s"
    if spec.family == "t2t":
        return "t2t"
    if spec.output_type.startswith("s2t_chat"):
        return "s2t_chat"
    return "understand"


def task_tag(task: str) -> str:
    """A short name (``s2s``) or a task tag (``<S2TCHAT> <TEXT2TOKEN>``) -> canonical tag."""
    return TASKS.get(task, canonical_task(task))


def build_request(sample: Sample, renderer: Renderer, cfg: GenerateConfig, rng: random.Random) -> Request:
    """Sample (task, feats, txt, extra, history) -> a decode :class:`Request`."""
    task = canonical_task(sample.task)
    if sample.history and task == "<S2TCHAT> <TEXT2TOKEN>":
        task = "<S2TCHAT> <TEXT2TOKEN> <HISTORY>"
    spec = get_spec(task, "understand")
    if spec.streaming:
        raise ValueError(f"{spec.name}: interleaved streaming generation is not supported "
                         "(no upstream decoder; use the non-streaming task)")
    segs = spec.build(sample, renderer, rng, with_target=False)
    policy = cfg.policy(policy_name(spec))
    text_tokens = 0
    if spec.text_input and policy.max_speech_per_text > 0:
        # the TTS input's length bounds its speech: the label text build() put into the prompt
        # (a TTS label draws nothing from the rng)
        text_tokens = len(renderer.encode(spec.label_text(sample, renderer, random.Random(0))))
    return Request(segs, policy, speech_out=spec.speech_out and not spec.text_input,
                   start_in_speech=spec.text_input and spec.speech_out, key=sample.key,
                   text_end=renderer.text_end, text_tokens=text_tokens)


class EChat:
    """Model + tokenizer + renderer + decoder (+ optional token2wav)."""

    def __init__(self, model, tokenizer, cfg, token2wav=None, voice=None) -> None:
        from osum_echat.data.loader import build_renderer

        self.cfg = cfg
        self.model = model.eval()
        self.tok = tokenizer
        if cfg.data.speech_token_num != model.speech_token_num:
            raise ValueError(f"data.speech_token_num={cfg.data.speech_token_num} but the model has "
                             f"{model.speech_token_num} speech classes; set data.speech_token_num")
        self.renderer = build_renderer(cfg.data, tokenizer, cfg.text.think_style, model.text_vocab_size,
                                       cfg.text.prompt_style, cfg.text.lowercase_labels)
        self.decoder = Decoder(model, tokenizer, cfg.generate)
        self.token2wav = token2wav
        self.voice = voice

    @classmethod
    def from_pretrained(cls, checkpoint: Optional[str], config: Optional[str] = None,
                        tokenizer: Optional[str] = None, device: str = "auto", dtype: str = "fp32",
                        token2wav_dir: Optional[str] = None, overrides: Sequence[str] = (),
                        voice=None) -> "EChat":
        """Build from a config (default: the release architecture), load ``checkpoint``
        strictly (None = random weights, for smoke tests), move to ``device``/``dtype``."""
        from osum_echat.config import load_config
        from osum_echat.device import parse_dtype, resolve_device
        from osum_echat.model.build import build_model
        from osum_echat.model.checkpoint import load_checkpoint
        from osum_echat.text.tokenizer import load_tokenizer

        cfg = load_config(config or DEFAULT_CONFIG, overrides)
        tok = tokenizer if tokenizer is not None and not isinstance(tokenizer, (str, Path)) \
            else load_tokenizer(str(tokenizer or cfg.text.tokenizer), slim=cfg.text.slim_tokenizer)
        model = build_model(cfg.model, apply_trainable=False)
        if checkpoint:
            load_checkpoint(model, checkpoint)
        else:
            logger.warning("no checkpoint given: random weights")
        model = model.to(device=resolve_device(device), dtype=parse_dtype(dtype)).eval()
        t2w = None
        if token2wav_dir:
            from osum_echat.token2wav.model import Token2Wav

            t2w = Token2Wav.from_pretrained(token2wav_dir, device=device)
        return cls(model, tok, cfg, t2w, voice)

    # ------------------------------------------------------------------ requests
    def sample(self, task: str, wav: Optional[WavLike] = None, text: Optional[str] = None,
               instruction: Optional[str] = None, history: Sequence[HistoryItem] = (),
               key: str = "utt") -> Sample:
        """A :class:`Sample` for ``task`` (short name or tag) from user inputs."""
        tag = task_tag(task)
        spec = get_spec(tag, "understand")
        extra: dict = {}
        if instruction:
            extra["instruction"] = instruction
        if spec.family == "t2t":
            extra["question"] = text or ""
        if spec.speech_in and wav is None:
            raise ValueError(f"task {tag} needs speech input (wav)")
        feats = features_from_wav(wav, self.renderer.num_mel_bins) if spec.speech_in else None
        if (spec.text_input or spec.family == "t2t") and not (text or "").strip():
            raise ValueError(f"task {tag} needs a text input")
        return Sample(key=key, task=tag, txt=text or "", extra=extra, feats=feats, history=list(history))

    def request(self, sample: Sample, seed: Optional[int] = None) -> Request:
        rng = random.Random(f"{self.cfg.generate.seed}|instruction|{sample.key}")
        req = build_request(sample, self.renderer, self.cfg.generate, rng)
        req.seed = seed
        return req

    def _finish(self, reply: Reply) -> Reply:
        if self.token2wav is not None and reply.speech_codes:
            reply.wav, reply.sample_rate = self.token2wav.synthesize(reply.speech_codes, self.voice)
        return reply

    def generate(self, samples: Sequence[Sample], interrupt=None, processors: Sequence[Processor] = (),
                 synthesize: bool = True) -> list[Reply]:
        """Batched decoding of samples (one row each)."""
        replies = self.decoder.generate([self.request(s) for s in samples], interrupt, processors)
        return [self._finish(r) for r in replies] if synthesize else replies

    def run(self, task: str, wav: Optional[WavLike] = None, text: Optional[str] = None,
            instruction: Optional[str] = None, interrupt=None, processors: Sequence[Processor] = (),
            history: Sequence[HistoryItem] = ()) -> Reply:
        """One request of any task."""
        return self.generate([self.sample(task, wav, text, instruction, history)], interrupt, processors)[0]

    def stream(self, task: str, wav: Optional[WavLike] = None, text: Optional[str] = None,
               instruction: Optional[str] = None, interrupt=None,
               processors: Sequence[Processor] = ()) -> Iterator[Event]:
        """Streaming events (``text``, ``think_end``, ``speech``, ``done``) of one request."""
        req = self.request(self.sample(task, wav, text, instruction))
        for ev in self.decoder.stream(req, interrupt, processors):
            if ev.kind == "done" and ev.reply is not None:
                self._finish(ev.reply)
            yield ev

    # ------------------------------------------------------------------ tasks
    def asr(self, wav: WavLike, **kw) -> Reply:
        return self.run("asr", wav, **kw)

    def understand(self, wav: WavLike, instruction: Optional[str] = None, task: str = "<TRANSCRIBE>",
                   **kw) -> Reply:
        """Any understanding task; ``instruction`` (else one from the prompt files for ``task``)."""
        return self.run(task, wav, instruction=instruction, **kw)

    def chat(self, wav: WavLike, think: bool = False, **kw) -> Reply:
        return self.run("s2t_think" if think else "s2t_chat", wav, **kw)

    def s2s(self, wav: WavLike, think: bool = False, **kw) -> Reply:
        return self.run("s2s_think" if think else "s2s", wav, **kw)

    def speak(self, text: str, **kw) -> Reply:
        return self.run("tts", text=text, **kw)

    def text_chat(self, text: str, **kw) -> Reply:
        return self.run("t2t", text=text, **kw)

    def session(self) -> "Session":
        return Session(self)


class Session:
    """Multi-turn spoken dialogue with history in the canonical layout (docs/data.md §3).

    Each turn keeps the user features, the reply text (without think) and the reply codes;
    the last ``generate.history_turns`` turns are used. No state lives on the model.
    """

    def __init__(self, bot: EChat) -> None:
        self.bot = bot
        self.turns: list[HistoryItem] = []

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.reset()

    def reset(self) -> None:
        self.turns = []

    def history(self) -> list[HistoryItem]:
        keep = self.bot.cfg.generate.history_turns
        turns = self.turns[-keep:] if keep else []
        return [HistoryItem(i + 1, text=t.text, codes=t.codes, feats=t.feats) for i, t in enumerate(turns)]

    def sample(self, wav: WavLike, task: str = "s2s") -> Sample:
        return self.bot.sample(task, wav, history=self.history())

    def _turn(self, task: str, wav: WavLike, **kw) -> Reply:
        s = self.sample(wav, task)
        reply = self.bot.generate([s], **kw)[0]
        self.turns.append(HistoryItem(len(self.turns) + 1, text=reply.text,
                                      codes=list(reply.speech_codes) or None, feats=s.feats))
        return reply

    def s2s(self, wav: WavLike, **kw) -> Reply:
        """A spoken turn: text + speech reply given the history."""
        return self._turn("s2s", wav, **kw)

    def chat(self, wav: WavLike, **kw) -> Reply:
        """A spoken turn answered in text only (S2T chat with history)."""
        return self._turn("s2t_chat", wav, **kw)
