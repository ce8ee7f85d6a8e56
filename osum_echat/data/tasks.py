"""Task catalogue: every upstream task tag -> one :class:`TaskSpec` that builds the
conversation segments (``osum_echat.model.batch`` contract) for training AND inference.

Layouts (SYS = system block + user start; SP = speech in; AS = assistant start; Y = label +
``<|im_end|>``; Z = ``[4096] codes [4096]``; INS = instruction; X = TTS text; H = history):

=============================  ===========================================  ==============
output_type                    segments                                     supervised
=============================  ===========================================  ==============
text (understanding)           SYS INS SP AS Y                              Y
text, plain style (OSUM)       INS SP Y (Y ends with <|endoftext|>)         Y
s2t_chat / _think / _fake      SYS [H] SP AS Y                              Y
text2text                      SYS INS(extra.question) AS Y                 Y
speech2text_token(_think/_h.)  SYS [H] SP AS Y Z                            Y, Z
text2token                     SYS X AS Z                                   Z
*_streaming                    SYS [H] SP AS | SYS X AS, then Y/Z chunks    all chunks
                               alternating 6 text : 18 speech
=============================  ===========================================  ==============

With history the system block is followed by the past turns (:func:`build_history_segments`)
and then the user start of the current turn. ``spec.build(sample, renderer, rng,
with_target=False)`` stops after AS: that is the inference prompt, by construction identical
to the training prefix.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from osum_echat.data.render import DropSample, Renderer
from osum_echat.data.sample import HistoryItem, Sample
from osum_echat.model.batch import (
    Segment,
    SpeechInSegment,
    SpeechOutSegment,
    TextSegment,
)
from osum_echat.text.normalize import normalize_label

STTC_SEP = "<开始回答>"
AGE_FIX = {"<YOUTH>": "<ADULT>", "<MIDDLE_AGE>": "<ADULT>", "<MIDDLE>": "<ADULT>"}
STYLE_FIX = {"朗读": "新闻科普", "科普百科": "新闻科普", "悬疑恐怖": "恐怖故事", "童话故事": "童话故事",
             "客服": "客服", "诗歌": "诗歌散文", "散文": "诗歌散文", "武侠评书": "有声书", "小说": "有声书",
             "历史": "有声书", "科幻": "有声书", "对话": "日常口语", "口语": "日常口语", "幽默": "其他",
             "其他": "其他"}
ONLY_X_TASKS = ("<TRANSCRIBE> <EMOTION>", "<TRANSCRIBE> <STYLE>", "<TRANSCRIBE> <CAPTION>",
                "<TRANSCRIBE> <GENDER>", "<TRANSCRIBE> <AGE>")


@dataclass(frozen=True)
class TaskSpec:
    """What one task tag means. ``system`` is a key of ``text.prompts.SYSTEM_PROMPTS``."""

    name: str
    output_type: str
    family: str  # s2t | t2s | s2s | t2t
    system: str
    instruction: bool = False  # takes an instruction (prompt file / extra.question for t2t)
    speech_in: bool = True
    speech_out: bool = False
    text_input: bool = False  # TTS: the text to speak is the input, not a target
    streaming: bool = False
    think: bool = False
    history: bool = False  # accepts past turns
    chat: bool = False  # answer text of a dialogue (leading-tag handling of the think style)
    tag_keep: bool = False  # tag style keeps/prepends the answer emotion tag

    def build(self, sample: Sample, r: Renderer, rng: random.Random,
              with_target: bool = True) -> list[Segment]:
        """Segments of ``sample``; raises :class:`DropSample` for unusable samples.

        Reads sample.txt/extra/feats/history; speech features may be None (a (0, F)
        placeholder is put in; the features stage fills it). ``rng`` drives the instruction
        choice and the tag-think unknown coin (seed it per sample for reproducibility).
        """
        if r.prompt_style == "plain" and (self.speech_out or self.family == "t2t" or sample.history):
            raise DropSample("unsupported_task", f"{self.name}: the plain (OSUM) layout has text "
                                                 "answers to speech only, no history")
        hist = sample.history if self.history else []
        if hist:
            segs: list[Segment] = [TextSegment(list(r.system(self.system)))]
            segs += build_history_segments(hist, r)
            segs.append(TextSegment(list(r.user_start)))
        else:  # empty in the plain (OSUM) layout, which has no system prompt or turn markers
            segs = [TextSegment(head)] if (head := r.system(self.system) + r.user_start) else []
        if self.instruction:
            ins = self._instruction(sample, r, rng)
            if ins:
                segs.append(TextSegment(r.encode(ins)))
        if self.speech_in:
            feats = sample.feats if sample.feats is not None else r.placeholder_feats()
            segs.append(SpeechInSegment(feats))
        text = self.label_text(sample, r, rng) if (with_target or self.text_input) else ""
        if self.text_input:
            segs.append(TextSegment(r.encode(text)))
        if r.assistant_start:
            segs.append(TextSegment(list(r.assistant_start)))
        if not with_target:
            return segs
        ids, holes = r.label(text, r.given_think_span(text) if self.think_given(sample) else ())
        if self.text_given(sample):
            holes = tuple(range(len(ids)))
        codes = self.codes(sample, r) if self.speech_out else []
        if self.streaming:
            segs += interleave(ids, holes, codes, *r.streaming_chunks)
        elif self.text_input:
            segs.append(SpeechOutSegment(codes, supervised=True))
        else:
            segs.append(TextSegment(ids, supervised=True, no_loss=holes))
            if self.speech_out:
                segs.append(SpeechOutSegment(codes, supervised=True))
        return segs

    def _instruction(self, sample: Sample, r: Renderer, rng: random.Random) -> str | None:
        if self.family == "t2t":
            q = str(sample.extra.get("question") or "").strip()
            if not q:
                raise DropSample("missing_question", "t2t needs extra.question")
            return q
        explicit = sample.extra.get("instruction")  # our extension: an explicit instruction
        if explicit:
            return str(explicit)
        return r.instruction(self.name, rng)

    def think_given(self, sample: Sample) -> bool:
        """``extra.think_loss: false`` on a think task (our extension): the think is given, not
        learnt; its tokens carry no loss and the answer after it does (e.g. a think whose
        attributes were changed on purpose, with the answer that follows from them: it teaches
        the answer to follow its think without teaching the think anything wrong)."""
        return self.think and _loss_off(sample.extra, "think_loss")

    def text_given(self, sample: Sample) -> bool:
        """``extra.text_loss: false`` on a task that answers in text and speech (our extension):
        the whole reply text (think and ``<|im_end|>`` included) is given, not learnt; only the
        speech codes after it carry loss. Such a record teaches the codes to say what the text
        says, whatever the question suggests (e.g. another reply's text with that reply's codes).
        Raises :class:`DropSample` on a task without speech output (nothing would be learnt);
        TTS reads its text as input anyway (no effect)."""
        if not _loss_off(sample.extra, "text_loss"):
            return False
        if not self.speech_out:
            raise DropSample("text_loss_without_speech",
                             f"{self.name}: extra.text_loss false leaves no target without speech output")
        return not self.text_input

    def label_text(self, sample: Sample, r: Renderer, rng: random.Random) -> str:
        """The normalised supervised text (think prefix included); never empty."""
        text = sample.txt.replace("\n", " ").strip()
        if "<AGE>" in self.name:
            for old, new in AGE_FIX.items():
                text = text.replace(old, new)
        if "<STYLE>" in self.name:
            for old, new in STYLE_FIX.items():
                text = text.replace(f"<{old}>", f"<{new}>")
        if self.chat and (r.think_style == "language" or self.tag_keep):
            text = r.answer_text(text, chat=True)
        if not text.strip():
            raise DropSample("empty_label", "empty answer")
        if self.think:
            text = r.think_text(sample.extra, text, rng)
        text = normalize_label(text, self.name)
        if r.lowercase_labels:  # OSUM's labels: everything lower-cased, tags included
            text = text.lower()
        if not text:
            raise DropSample("empty_label", "empty after normalisation")
        return text

    def codes(self, sample: Sample, r: Renderer) -> list[int]:
        """``[4096] + extra.speech_token + [4096]`` (validated)."""
        return frame_codes(sample.extra.get("speech_token"), r.speech_boundary)


def _loss_off(extra: dict, name: str) -> bool:
    """``extra[name]`` is false (``false`` / ``0`` / ``no`` as strings too); absent: loss on."""
    flag = extra.get(name, True)
    if isinstance(flag, str):
        flag = flag.strip().lower() not in ("false", "0", "no")
    return not flag


def frame_codes(raw, boundary: int) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise DropSample("missing_speech_codes", "extra.speech_token")
    try:
        codes = [int(c) for c in raw]
    except (TypeError, ValueError):
        raise DropSample("bad_speech_codes", "not integers") from None
    if min(codes) < 0 or max(codes) >= boundary:
        raise DropSample("bad_speech_codes", f"outside 0..{boundary - 1}")
    return [boundary] + codes + [boundary]


def interleave(text_ids: list[int], holes: Sequence[int], speech_ids: list[int],
               n_text: int = 6, n_speech: int = 18) -> list[Segment]:
    """Streaming target: chunks of ``n_text`` text ids and ``n_speech`` speech ids
    alternating (all supervised); the remaining speech follows the last text chunk.
    Requires ``3 * len(text) <= len(speech)`` (upstream's model assert)."""
    if 3 * len(text_ids) > len(speech_ids):
        raise DropSample("speech_text_ratio", f"streaming needs 3*{len(text_ids)} <= {len(speech_ids)}")
    out: list[Segment] = []
    hole = set(holes)
    t = s = 0
    while t < len(text_ids):
        chunk_holes = tuple(j - t for j in range(t, min(t + n_text, len(text_ids))) if j in hole)
        out.append(TextSegment(text_ids[t:t + n_text], supervised=True, no_loss=chunk_holes))
        t += n_text
        end = s + n_speech if t < len(text_ids) else len(speech_ids)  # the rest after the last text
        if s < len(speech_ids):
            out.append(SpeechOutSegment(speech_ids[s:end], supervised=True))
            s = end
    return out


def build_history_segments(turns: Sequence[HistoryItem], r: Renderer) -> list[Segment]:
    """Past turns in the canonical multi-turn layout (never supervised), per turn:
    ``USER_START, SpeechIn(feats), ASSISTANT_START, Text(reply + <|im_end|>),
    [SpeechOut([4096] codes [4096])], Text("\\n")``. The reply is the answer without think.
    Each turn needs ``feats`` (T, F) (None -> placeholder) and ``text``; ``codes`` optional."""
    from osum_echat.text.prompts import split_think

    segs: list[Segment] = []
    for turn in turns:
        if turn.text is None:
            raise DropSample("history_gap", f"turn {turn.index} has no text")
        reply = split_think(turn.text)[1]
        reply = normalize_label(r.answer_text(reply.strip(), chat=r.think_style == "language"))
        feats = turn.feats if turn.feats is not None else r.placeholder_feats()
        segs += [TextSegment(list(r.user_start)), SpeechInSegment(feats),
                 TextSegment(list(r.assistant_start)),
                 TextSegment(r.encode(reply) + [r.ids.im_end])]
        if turn.codes:
            segs.append(SpeechOutSegment([r.speech_boundary] + [int(c) for c in turn.codes]
                                         + [r.speech_boundary]))
        segs.append(TextSegment(list(r.newline)))
    return segs


def _spec(name: str, output_type: str, family: str, system: str, **kw) -> TaskSpec:
    return TaskSpec(name=name, output_type=output_type, family=family, system=system, **kw)


UNDERSTANDING = (
    "<TRANSCRIBE>", "<TRANSCRIBE> <ALIGN>", "<TRANSCRIBE> <PUNCTUATION>", "<TRANSCRIBE> <S2TCHAT>",
    "<TRANSCRIBE> <EMOTION>", "<TRANSCRIBE> <STYLE>", "<TRANSCRIBE> <CAPTION>",
    "<TRANSCRIBE> <GENDER>", "<TRANSCRIBE> <AGE>", "<EMOTION>", "<STYLE>", "<CAPTION>",
    "<CAPTION> <AUDIO>", "<GENDER>", "<AGE>", "<AGE> <GENDER>", "<TRANSCRIBE> <AGE> <GENDER>",
    "<TRANSCRIBE> <STYLE> <AGE> <GENDER>", "<STYLE> <AGE> <GENDER>",
    "<TRANSCRIBE> <CAPTION> <AGE> <GENDER>", "<TRANSCRIBE> <EMOTION> <AGE> <GENDER>",
    "<TRANSCRIBE> <AGE> <GENDER> <STYLE> <EMOTION>",
    "<TRANSCRIBE> <CAPTION> <AGE> <GENDER> <EMOTION> <STYLE>",
)
_CHAT = {"chat": True, "history": True}
CATALOGUE: dict[str, TaskSpec] = {
    **{t: _spec(t, "text", "s2t", "understand", instruction=True) for t in UNDERSTANDING},
    "<S2TCHAT>": _spec("<S2TCHAT>", "s2t_chat", "s2t", "s2t_chat", tag_keep=True, **_CHAT),
    "<S2TCHAT_FAKE>": _spec("<S2TCHAT_FAKE>", "s2t_chat_fake", "s2t", "s2s_think", **_CHAT),
    "<S2TCHAT> <THINKER>": _spec("<S2TCHAT> <THINKER>", "s2t_chat_think", "s2t", "s2t_think",
                                 think=True, tag_keep=True, **_CHAT),
    "<TEXT2TOKEN>": _spec("<TEXT2TOKEN>", "text2token", "t2s", "tts", speech_in=False,
                          speech_out=True, text_input=True, chat=True),
    "<TEXT2TOKEN> <STREAMING>": _spec("<TEXT2TOKEN> <STREAMING>", "text2token_streaming", "t2s",
                                      "tts_stream", speech_in=False, speech_out=True,
                                      text_input=True, streaming=True, chat=True),
    "<S2TCHAT> <TEXT2TOKEN>": _spec("<S2TCHAT> <TEXT2TOKEN>", "speech2text_token", "s2s", "s2s",
                                    speech_out=True, tag_keep=True, **_CHAT),
    "<S2TCHAT> <TEXT2TOKEN> <THINK>": _spec("<S2TCHAT> <TEXT2TOKEN> <THINK>",
                                            "speech2text_token_think", "s2s", "s2s_think",
                                            speech_out=True, think=True, tag_keep=True, **_CHAT),
    "<S2TCHAT> <TEXT2TOKEN> <STREAMING>": _spec("<S2TCHAT> <TEXT2TOKEN> <STREAMING>",
                                                "speech2text_token_streaming", "s2s", "s2s_stream",
                                                speech_out=True, streaming=True, **_CHAT),
    "<S2TCHAT> <TEXT2TOKEN> <HISTORY>": _spec("<S2TCHAT> <TEXT2TOKEN> <HISTORY>",
                                              "speech2text_token_history", "s2s", "s2s",
                                              speech_out=True, tag_keep=True, **_CHAT),
    "<TEXT2TEXT>": _spec("<TEXT2TEXT>", "text2text", "t2t", "t2t", instruction=True,
                         speech_in=False, chat=True),
}
ALIASES = {
    "TEXT2TOKEN": "<TEXT2TOKEN>",
    "<Speech2TEXTandTOKEN>": "<S2TCHAT> <TEXT2TOKEN>",
    "<S2TCHAT> <TEXT2TOKEN> <EMOTION>": "<S2TCHAT> <TEXT2TOKEN>",
    "<S2S>": "<S2TCHAT> <TEXT2TOKEN>",
    "<TTS>": "<TEXT2TOKEN>",
    "<T2T>": "<TEXT2TEXT>",
    "<ASR>": "<TRANSCRIBE>",
}
FAMILY_OUTPUT_TYPES = {fam: sorted({s.output_type for s in CATALOGUE.values() if s.family == fam})
                       for fam in ("s2t", "t2s", "s2s", "t2t")}


def canonical_task(task: str) -> str:
    """Collapse white space and apply aliases (``'<S2TCHAT>  <TEXT2TOKEN>'`` -> canonical);
    tags written without spaces (``'<TRANSCRIBE><GENDER>'``, as upstream's shell scripts pass
    them) are split."""
    t = " ".join(task.replace("><", "> <").split())
    return ALIASES.get(t, t)


def get_spec(task: str, unknown: str = "drop") -> TaskSpec:
    """The spec of ``task``; unknown tags raise DropSample('unknown_task') or, with
    ``unknown='understand'``, become an understanding task (no instruction unless the prompt
    files have the key)."""
    t = canonical_task(task)
    spec = CATALOGUE.get(t)
    if spec is None:
        if unknown != "understand":
            raise DropSample("unknown_task", t)
        spec = _spec(t, "text", "s2t", "understand", instruction=True)
    return spec


def rewrite_task(sample: Sample, rng: random.Random, only_x_rate: float = 0.0,
                 streaming_tts_rate: float = 0.0) -> str:
    """Data-side task rewrites (training only): only-X conversion, streaming TTS and the
    ``<HISTORY>`` upgrade. May change ``sample.txt``; returns the final task string."""
    task = canonical_task(sample.task)
    if only_x_rate and task in ONLY_X_TASKS and rng.random() < only_x_rate:
        start, end = sample.txt.find("<"), sample.txt.find(">")
        if start == -1 or end < start:
            raise DropSample("empty_label", "only-X: no <tag> in the label")
        task, sample.txt = task.split(" ", 1)[1], sample.txt[start:end + 1]
    elif only_x_rate and task == "<TRANSCRIBE> <S2TCHAT>" and rng.random() < only_x_rate:
        parts = sample.txt.split(STTC_SEP)
        if len(parts) != 2 or not parts[1].strip():
            raise DropSample("empty_label", "STTC without exactly one answer separator")
        task, sample.txt = "<S2TCHAT>", parts[1].strip()
    if streaming_tts_rate and task == "<TEXT2TOKEN>" and rng.random() < streaming_tts_rate:
        task = "<TEXT2TOKEN> <STREAMING>"
    if task == "<S2TCHAT> <TEXT2TOKEN>" and sample.history:
        task = "<S2TCHAT> <TEXT2TOKEN> <HISTORY>"
    return task
