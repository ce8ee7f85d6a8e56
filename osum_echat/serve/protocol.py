"""The ``/v1/realtime`` WebSocket protocol: event names, error codes, close codes, settings.

Everything a client and the server must agree on lives here (docs/serving.md is the prose
version; :mod:`osum_echat.serve.client` uses these names). Text frames are JSON objects with a
``type``; binary frames are audio: client -> server PCM16 little-endian mono at 16 kHz,
server -> client PCM16 mono at the vocoder's rate (``output_sample_rate`` of
``session.created``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

INPUT_SAMPLE_RATE = 16000
TASKS = ("s2s", "s2s_think", "s2t_chat", "s2t_think", "asr")
SPEECH_TASKS = ("s2s", "s2s_think")

# client -> server
SESSION_UPDATE = "session.update"
SESSION_RESET = "session.reset"
AUDIO_COMMIT = "input_audio.commit"
AUDIO_CLEAR = "input_audio.clear"
RESPONSE_CANCEL = "response.cancel"
PING = "ping"
CLIENT_EVENTS = (SESSION_UPDATE, SESSION_RESET, AUDIO_COMMIT, AUDIO_CLEAR, RESPONSE_CANCEL, PING)

# server -> client
SESSION_CREATED = "session.created"
SESSION_UPDATED = "session.updated"
SESSION_CLEARED = "session.cleared"
SPEECH_STARTED = "input_audio.speech_started"
SPEECH_STOPPED = "input_audio.speech_stopped"
COMMITTED = "input_audio.committed"
CLEARED = "input_audio.cleared"
RESPONSE_CREATED = "response.created"
TEXT_DELTA = "response.text.delta"
THINK_DELTA = "response.think.delta"
AUDIO_STARTED = "response.audio.started"
RESPONSE_DONE = "response.done"
RESPONSE_CANCELLED = "response.cancelled"
ERROR = "error"
PONG = "pong"

# error codes (``error.code``)
E_BAD_JSON = "bad_json"                # a text frame that is not a JSON object with a "type"
E_UNKNOWN_EVENT = "unknown_event"      # a "type" the server does not know
E_BAD_SETTINGS = "bad_settings"        # session.update with unknown keys / bad values
E_NO_SESSION = "no_session"            # audio or a turn event before session.update
E_ODD_BYTES = "odd_byte_count"         # a binary frame whose length is not a multiple of 2
E_BAD_RATE = "bad_sample_rate"         # a declared input rate other than 16000
E_FRAME_TOO_LARGE = "frame_too_large"  # a binary frame over max_frame_bytes
E_TURN_TOO_LONG = "turn_too_long"      # a user turn over max_turn_s (its audio is dropped)
E_EMPTY_TURN = "empty_turn"            # commit with no (or too little) audio
E_BUSY = "server_busy"                 # no room in the admission queue
E_RESPONSE_FAILED = "response_failed"  # the model failed on this turn (the session lives on)

# WebSocket close codes
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008       # too many protocol errors in a row
CLOSE_BUSY = 1013         # "try again later": session limit reached
CLOSE_IDLE = 4000         # idle timeout


class SettingsError(ValueError):
    """A ``session.update`` that cannot be applied (the message names the field)."""


@dataclass
class VadSettings:
    """Server-side turn detection (``turn_detection``)."""

    mode: str = "server_vad"      # server_vad | none (client commits every turn)
    threshold: float = 0.5        # speech probability that starts speech
    neg_threshold: float = 0.35   # below this counts as silence
    silence_ms: int = 500         # hang time: silence that ends a turn
    min_speech_ms: int = 200      # shorter bursts are ignored (no turn, no barge-in)
    prefix_ms: int = 300          # audio kept before the detected start

    def validate(self) -> None:
        if self.mode not in ("server_vad", "none"):
            raise SettingsError(f"turn_detection.mode must be server_vad or none, got {self.mode!r}")
        if not 0 < self.neg_threshold <= self.threshold < 1:
            raise SettingsError("turn_detection: need 0 < neg_threshold <= threshold < 1")
        if min(self.silence_ms, self.min_speech_ms, self.prefix_ms) < 0:
            raise SettingsError("turn_detection: durations must be >= 0")


@dataclass
class SamplingOverrides:
    """Per-session overrides of the task's sampling policy (None = the policy's value)."""

    greedy: Optional[bool] = None
    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    repetition_penalty: Optional[float] = None

    def values(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class SessionSettings:
    """What ``session.update`` may set (unknown keys raise :class:`SettingsError`)."""

    task: str = "s2s"
    voice: Optional[str] = None          # a voice name the server was started with
    input_sample_rate: int = INPUT_SAMPLE_RATE
    max_reply_tokens: int = 600          # text + speech tokens of one reply
    sampling: SamplingOverrides = field(default_factory=SamplingOverrides)
    turn_detection: VadSettings = field(default_factory=VadSettings)

    def validate(self, think_style: str = "") -> None:
        if self.task not in TASKS:
            raise SettingsError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.input_sample_rate != INPUT_SAMPLE_RATE:
            raise SettingsError(f"input_sample_rate must be {INPUT_SAMPLE_RATE} (PCM16 mono), "
                                f"got {self.input_sample_rate}")
        if not 1 <= self.max_reply_tokens <= 8000:
            raise SettingsError("max_reply_tokens must be in [1, 8000]")
        self.turn_detection.validate()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _apply(obj: Any, data: dict, where: str) -> None:
    """Set ``obj``'s dataclass fields from ``data``, recursing into nested dataclasses."""
    known = {f.name: f for f in fields(obj)}
    for key, value in data.items():
        if key not in known:
            raise SettingsError(f"{where}: unknown setting {key!r} (known: {sorted(known)})")
        current = getattr(obj, key)
        if hasattr(current, "__dataclass_fields__"):
            if not isinstance(value, dict):
                raise SettingsError(f"{where}.{key} must be an object")
            _apply(current, value, f"{where}.{key}")
            continue
        if value is not None and current is not None and not isinstance(value, type(current)) \
                and not (isinstance(current, float) and isinstance(value, int)):
            raise SettingsError(f"{where}.{key}: expected {type(current).__name__}, got {type(value).__name__}")
        setattr(obj, key, value)


def updated_settings(current: SessionSettings, data: Any) -> SessionSettings:
    """A validated copy of ``current`` with the ``session`` object of a ``session.update``."""
    import copy

    if not isinstance(data, dict):
        raise SettingsError("session.update: 'session' must be an object")
    new = copy.deepcopy(current)
    _apply(new, data, "session")
    new.validate()
    return new


def event(kind: str, **fields_: Any) -> dict[str, Any]:
    """A server event (JSON object)."""
    return {"type": kind, **fields_}


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return event(ERROR, code=code, message=message, **extra)
