"""Generation configuration (the ``generate:`` section).

Per-task sampling policies default to upstream's settings (docs/upstream_compat.md, "Sampling
defaults"):

============  ======  =====  =====  ====  ===========  ===============
policy        greedy  T      top_k  top_p  repetition   max_new_tokens
============  ======  =====  =====  ====  ===========  ===============
understand    no      1.0    5      0.9   1.05         2000
s2t_chat      no      0.4    2      1.0   1.05         2000
tts           no      1.2    15     0.8   1.0          2000
t2t           yes     -      -      -     1.0          200
s2s           no      1.2    10     0.9   1.0          2000
============  ======  =====  =====  ====  ===========  ===============

(upstream: max_new_tokens 8000 with a 2000-token stopper for everything but t2t.) Every
field is overridable from YAML, dotted overrides (``generate.s2s.top_k=5``) and the CLIs.
This module imports nothing from ``osum_echat.config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POLICIES = ("understand", "s2t_chat", "tts", "t2t", "s2s")


@dataclass
class SamplingConfig:
    """How the next token is chosen: repetition penalty -> temperature -> top-k -> top-p."""

    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    repetition_penalty: float = 1.0  # HF semantics, over the ids of the current phase
    max_new_tokens: int = 2000  # text + speech ids generated (upstream MaxTokenStopper 2000)
    age_forcing: bool = False  # tag-think age slot forcing; upstream: S2S only
    # Speech codes per text token of the answer at most (the reply generated before the speech,
    # or the TTS input); at the limit the closing boundary is forced. 0 = off (upstream: off; the
    # CosyVoice LLM bounds its speech the same way, max_token_text_ratio 20)
    max_speech_per_text: float = 0.0

    def validate(self) -> None:
        if self.temperature <= 0 and not self.greedy:
            raise ValueError("temperature must be > 0 (or set greedy: true)")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0 or self.max_new_tokens < 1 or self.repetition_penalty <= 0:
            raise ValueError("top_k >= 0, max_new_tokens >= 1 and repetition_penalty > 0 required")
        if self.max_speech_per_text < 0:
            raise ValueError("max_speech_per_text must be >= 0 (0 = off)")


@dataclass
class UnderstandSampling(SamplingConfig):
    temperature: float = 1.0
    top_k: int = 5
    top_p: float = 0.9
    repetition_penalty: float = 1.05


@dataclass
class S2TChatSampling(SamplingConfig):
    temperature: float = 0.4
    top_k: int = 2
    top_p: float = 1.0
    repetition_penalty: float = 1.05


@dataclass
class TTSSampling(SamplingConfig):
    temperature: float = 1.2
    top_k: int = 15
    top_p: float = 0.8
    repetition_penalty: float = 1.0


@dataclass
class T2TSampling(SamplingConfig):
    greedy: bool = True
    max_new_tokens: int = 200


@dataclass
class S2SSampling(SamplingConfig):
    temperature: float = 1.2
    top_k: int = 10
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    age_forcing: bool = True


@dataclass
class NGramBlockConfig:
    """Speech repetition blocker (upstream's intended, never-activated processor; see
    docs/upstream_compat.md, "Sampling defaults").

    In the speech phase: the last code is banned once it has repeated ``repeat_times`` times in
    a row; any code occurring ``window_repeat`` times in the last ``window`` codes is banned.
    ``special`` gives per-code ``[repeat_times, window, window_repeat]`` (upstream: code 1446,
    probably silence, gets ``[10, 13, 10]``). The speech boundary is never banned.
    """

    enable: bool = False  # upstream ran without it
    repeat_times: int = 5
    window: int = 8
    window_repeat: int = 5
    special: dict[int, list[int]] = field(default_factory=lambda: {1446: [10, 13, 10]})


@dataclass
class GenerateConfig:
    max_new_tokens: int = 2000  # cap applied on top of each policy's own limit
    seed: int = 0  # sampling RNG seed per request (same seed + same prompt = same reply)
    force_speech_boundary: bool = True  # the first speech id is the opening boundary (trained so)
    history_turns: int = 5  # Session: past turns kept (upstream 5)
    # (one class per policy so that a partial YAML/override section keeps upstream's defaults)
    understand: UnderstandSampling = field(default_factory=lambda: UnderstandSampling())
    s2t_chat: S2TChatSampling = field(default_factory=lambda: S2TChatSampling())
    tts: TTSSampling = field(default_factory=lambda: TTSSampling())
    t2t: T2TSampling = field(default_factory=lambda: T2TSampling())
    s2s: S2SSampling = field(default_factory=lambda: S2SSampling())
    ngram_block: NGramBlockConfig = field(default_factory=NGramBlockConfig)

    def policy(self, name: str) -> SamplingConfig:
        if name not in POLICIES:
            raise KeyError(f"unknown sampling policy {name!r}; known: {POLICIES}")
        return getattr(self, name)

    def validate(self) -> None:
        for name in POLICIES:
            self.policy(name).validate()
        if self.max_new_tokens < 1 or self.history_turns < 0:
            raise ValueError("max_new_tokens >= 1 and history_turns >= 0 required")
