"""The decode loop: prefill the prompt embeddings, then step with a transformers KV cache.

No patched modules: the LLM body (``Qwen2Model``) is called through its public API with
``inputs_embeds`` and a :class:`transformers.DynamicCache`; the heads are applied here. Every
request (row) carries its own state ``(phase, head, embedding table)``:

* text phase: ``lm_head`` on the hidden state, generated ids embedded with ``embed_tokens``;
* speech phase: ``speech_head`` and ``speech_token_emded``.

S2S rows switch to the speech phase after ``<|im_end|>`` (the ``<|im_end|>`` itself is embedded
as text); TTS rows start in it (the opening boundary is part of the prompt, as upstream).
At prefill only the last position's hidden state goes through a head, and at every step only
the head of each row's phase is computed.

Stop rules per row: the text end of a text-only task (``text_end``: ``<|im_end|>``, or the
request's own ``text_end`` id, ``<|endoftext|>`` for OSUM's plain layout), the second speech
boundary (``speech_end``), the token budget (``max_tokens``; an S2S row that never produced
``<|im_end|>`` ends cleanly with empty codes) and an external interrupt flag
(``threading.Event``-like, checked every step: ``interrupted``).

Batches are left-padded (attention mask + per-row position ids), so batched greedy decoding
gives the same tokens as one-by-one decoding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import torch

from osum_echat.device import synchronize
from osum_echat.generate.config import GenerateConfig, SamplingConfig
from osum_echat.generate.processors import AgeForcing, ban, choose, ngram_banned, only, repetition_penalty
from osum_echat.generate.reply import Event, Reply
from osum_echat.model.batch import Example, Segment, SpeechOutSegment, collate
from osum_echat.text.prompts import THINK_CLOSE, split_think
from osum_echat.text.tokenizer import SpecialIds, encode

logger = logging.getLogger(__name__)

TEXT, SPEECH = "text", "speech"


@dataclass
class Request:
    """One prompt to answer. ``segments`` end with the assistant start (``TaskSpec.build(...,
    with_target=False)``); ``speech_out`` switches to speech after ``<|im_end|>``;
    ``start_in_speech`` (TTS) starts in the speech phase."""

    segments: list[Segment]
    policy: SamplingConfig
    speech_out: bool = False
    start_in_speech: bool = False
    key: str = ""
    seed: Optional[int] = None
    text_end: Optional[int] = None  # id that ends the text answer (None: <|im_end|>)
    text_tokens: int = 0  # TTS: tokens of the input text (the policy's max_speech_per_text)


@dataclass
class RowState:
    """Per-request decoding state (no global state anywhere)."""

    req: Request
    phase: str
    gen: Optional[torch.Generator]
    text_ids: list[int] = field(default_factory=list)  # generated text ids (im_end included)
    speech_ids: list[int] = field(default_factory=list)  # generated speech ids (boundaries incl.)
    boundaries: int = 0
    spoken_tokens: int = 0  # text tokens the speech says: the answer after the think (S2S)
    age_done: bool = False
    done: bool = False
    stop_reason: str = ""
    n_new: int = 0


# A user processor: (row state, logits of the row's current phase (V,)) -> logits.
Processor = Callable[[RowState, torch.Tensor], torch.Tensor]


class Decoder:
    """Greedy/sampling decoder over an :class:`OsumEChat` model."""

    def __init__(self, model, tokenizer, cfg: GenerateConfig | None = None) -> None:
        self.model = model.eval()
        self.tok = tokenizer
        self.cfg = cfg or GenerateConfig()
        self.ids = SpecialIds.from_tokenizer(tokenizer, model.text_vocab_size)
        self.boundary = model.speech_ids.boundary
        self.speech_token_num = model.speech_token_num
        self.age = AgeForcing.from_tokenizer(tokenizer)
        self.body = model.llm_body()

    @property
    def device(self) -> torch.device:
        return self.model.lm_head_weight.device

    # ------------------------------------------------------------------ prefill
    def _prompt(self, req: Request) -> Example:
        segs = list(req.segments)
        if req.start_in_speech:
            segs.append(SpeechOutSegment([self.boundary]))
        return Example(segs, key=req.key)

    def _prefill_inputs(self, reqs: Sequence[Request]):
        """Left-padded prompt embeddings (B, L, H), mask (B, L) or None, position ids (B, L)."""
        batch = collate([self._prompt(r) for r in reqs], self.model.text_vocab_size,
                        self.speech_token_num).to(self.device)
        emb = self.model.embed_inputs(batch)
        lens = [end - start for _, start, end in batch.spans]
        width = max(lens)
        if all(n == width for n in lens):
            pos = torch.arange(width, device=self.device).expand(len(reqs), width)
            return emb[:, :width], None, pos
        out = emb.new_zeros(len(reqs), width, emb.shape[-1])
        mask = torch.zeros(len(reqs), width, dtype=torch.long, device=self.device)
        for b, n in enumerate(lens):
            out[b, width - n:] = emb[b, :n]
            mask[b, width - n:] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return out, mask, pos

    # ------------------------------------------------------------------ one step
    def _logits(self, states: list[RowState], h: torch.Tensor) -> dict[int, torch.Tensor]:
        """Head of each live row's phase on its hidden state h (B, H) -> {row: (V,) float32}."""
        out: dict[int, torch.Tensor] = {}
        for phase in (TEXT, SPEECH):
            rows = [i for i, s in enumerate(states) if not s.done and s.phase == phase]
            if not rows:
                continue
            # a run of rows is a view (one request: no copy of h); the text head is one GEMV
            # over the whole vocabulary, memory-bound: nothing else here touches a full row
            x = h[rows[0]:rows[-1] + 1] if rows[-1] - rows[0] == len(rows) - 1 else h[rows]
            if phase == TEXT:
                logits = torch.nn.functional.linear(x, self.model.lm_head_weight)
            else:
                logits = self.model.speech_head(x)
            for j, i in enumerate(rows):
                out[i] = logits[j].float()
        return out

    def _process(self, s: RowState, logits: torch.Tensor, extra: Sequence[Processor]) -> torch.Tensor:
        p = s.req.policy
        if s.phase == TEXT:
            logits = repetition_penalty(logits, s.text_ids, p.repetition_penalty)
            if p.age_forcing and not s.age_done and self.age.fires(s.text_ids):
                logits = self.age.apply(logits)
                s.age_done = True
        else:
            logits = repetition_penalty(logits, [c for c in s.speech_ids if c != self.boundary],
                                        p.repetition_penalty)
            if s.boundaries == 0 and self.cfg.force_speech_boundary:
                logits = only(logits, self.boundary)
            elif s.boundaries > 0 and self._speech_full(s):
                logits = only(logits, self.boundary)
            elif self.cfg.ngram_block.enable:
                codes = [c for c in s.speech_ids if c != self.boundary]
                logits = ban(logits, ngram_banned(codes, self.cfg.ngram_block, self.boundary))
        for proc in extra:
            logits = proc(s, logits)
        return logits

    def _speech_full(self, s: RowState) -> bool:
        """The row has as many speech codes as ``policy.max_speech_per_text`` allows for its text:
        the tokens of the answer generated before the speech (the think is not spoken: its
        tokens do not count), else (TTS) ``Request.text_tokens``."""
        ratio = s.req.policy.max_speech_per_text
        if ratio <= 0:
            return False
        text = s.spoken_tokens or s.req.text_tokens
        # the opening boundary is in speech_ids unless the prompt carried it (TTS)
        codes = len(s.speech_ids) - s.boundaries + int(s.req.start_in_speech)
        return text > 0 and codes >= ratio * text

    def _spoken_tokens(self, s: RowState) -> int:
        """Text tokens of the answer the speech will say: the generated text (end id not
        counted), or with a think only the answer after it (re-encoded once per row)."""
        ids = s.text_ids[:-1]
        if s.req.policy.max_speech_per_text <= 0:
            return len(ids)
        think, answer = split_think(self.tok.decode(ids, skip_special_tokens=True))
        return max(len(encode(self.tok, answer.strip())), 1) if think else len(ids)

    def text_end(self, req: Request) -> int:
        return self.ids.im_end if req.text_end is None else req.text_end

    def _accept(self, s: RowState, token: int) -> None:
        """Record ``token`` (generated in ``s.phase``) and apply the stop/switch rules."""
        s.n_new += 1
        if s.phase == TEXT:
            s.text_ids.append(token)
            if token == self.text_end(s.req):
                if s.req.speech_out:
                    s.phase = SPEECH
                    s.spoken_tokens = self._spoken_tokens(s)
                else:
                    s.done, s.stop_reason = True, "text_end"
        else:
            s.speech_ids.append(token)
            if token == self.boundary:
                s.boundaries += 1
                if s.boundaries >= 2:
                    s.done, s.stop_reason = True, "speech_end"
        limit = min(s.req.policy.max_new_tokens, self.cfg.max_new_tokens)
        if not s.done and s.n_new >= limit:
            s.done, s.stop_reason = True, "max_tokens"

    def _embed_step(self, kinds: list[str], tokens: list[int]) -> torch.Tensor:
        """(B, 1, H) embeddings of the fed tokens, each with the table of its phase."""
        dev = self.device
        ids = torch.tensor(tokens, device=dev)
        if len(set(kinds)) == 1:  # every row in one phase (always so for one request)
            table = self.model.embed_tokens if kinds[0] == TEXT else self.model.speech_token_emded
            return table(ids).to(self.model.dtype)[:, None]
        is_text = torch.tensor([k == TEXT for k in kinds], device=dev)
        emb = torch.empty(len(tokens), self.body.config.hidden_size, device=dev, dtype=self.model.dtype)
        if bool(is_text.any()):
            emb[is_text] = self.model.embed_tokens(ids[is_text]).to(emb.dtype)
        if bool((~is_text).any()):
            emb[~is_text] = self.model.speech_token_emded(ids[~is_text]).to(emb.dtype)
        return emb[:, None]

    # ------------------------------------------------------------------ the loop
    @torch.inference_mode()
    def steps(self, reqs: Sequence[Request], interrupt=None, processors: Sequence[Processor] = (),
              timings: Optional[dict] = None) -> Iterator[list[tuple[int, int, str]]]:
        """Decode ``reqs`` together; yields per step ``[(row, token, phase), ...]`` for the rows
        that produced a token; the final states are in ``timings['states']``."""
        from transformers import DynamicCache

        timings = timings if timings is not None else {}
        if self.model.speech_head is None:
            bad = [r.key for r in reqs if r.speech_out or r.start_in_speech]
            if bad:
                raise ValueError(f"requests {bad} need speech output but the model has no speech head "
                                 "(a text-only model such as OSUM)")
        dev = self.device
        t0 = time.perf_counter()
        states = [RowState(r, SPEECH if r.start_in_speech else TEXT, self._generator(r),
                           boundaries=1 if r.start_in_speech else 0) for r in reqs]
        timings["states"] = states
        emb, mask, pos = self._prefill_inputs(reqs)
        cache = DynamicCache(config=self.body.config)
        out = self.body(inputs_embeds=emb, attention_mask=mask, position_ids=pos,
                        past_key_values=cache, use_cache=True)
        h = out.last_hidden_state[:, -1]
        next_pos = pos[:, -1:] + 1
        synchronize(dev)
        timings["prefill_ms"] = (time.perf_counter() - t0) * 1e3
        timings["prompt_tokens"] = int(emb.shape[1])
        n_steps = 0
        while True:
            logits = self._logits(states, h)
            emitted, feed, kinds = [], [], []
            for i, s in enumerate(states):
                if s.done:
                    feed.append(self.ids.im_end)
                    kinds.append(TEXT)
                    continue
                phase = s.phase
                tok = choose(self._process(s, logits[i], processors), s.req.policy, s.gen)
                self._accept(s, tok)
                emitted.append((i, tok, phase))
                feed.append(tok)
                kinds.append(phase)
            n_steps += 1
            if n_steps == 1:
                timings["first_token_ms"] = (time.perf_counter() - t0) * 1e3
            yield emitted
            if interrupt is not None and interrupt.is_set():
                for s in states:
                    if not s.done:
                        s.done, s.stop_reason = True, "interrupted"
            if all(s.done for s in states):
                break
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(len(reqs), 1)], dim=1)
            out = self.body(inputs_embeds=self._embed_step(kinds, feed), attention_mask=mask,
                            position_ids=next_pos, past_key_values=cache, use_cache=True)
            h = out.last_hidden_state[:, -1]
            next_pos = next_pos + 1
        synchronize(dev)
        total = (time.perf_counter() - t0) * 1e3
        timings["total_ms"] = total
        timings["decode_ms"] = total - timings["prefill_ms"]
        timings["steps"] = n_steps
        after_first = max(total - timings["first_token_ms"], 1e-9)
        timings["ms_per_token"] = after_first / max(n_steps - 1, 1)
        timings["tokens_per_s"] = 1e3 * max(n_steps - 1, 0) / after_first if n_steps > 1 else 0.0

    def _generator(self, req: Request) -> Optional[torch.Generator]:
        if req.policy.greedy:
            return None
        g = torch.Generator()
        g.manual_seed(self.cfg.seed if req.seed is None else req.seed)
        return g

    # ------------------------------------------------------------------ results
    def reply_of(self, s: RowState, timings: dict) -> Reply:
        """Parse a finished row: full reply text (no off-by-one), codes between boundaries."""
        text_ids = list(s.text_ids)
        end = self.text_end(s.req)
        if end in text_ids:
            text_ids = text_ids[: text_ids.index(end)]
        text = self.tok.decode(text_ids, skip_special_tokens=True)
        think, answer = split_think(text)
        codes = [c for c in s.speech_ids if c != self.boundary]
        t = {k: v for k, v in timings.items() if k != "states"}
        t["new_tokens"] = s.n_new
        return Reply(think=think, text=answer.strip() if think else answer, speech_codes=codes,
                     timings=t, stop_reason=s.stop_reason, text_ids=text_ids)

    def generate(self, reqs: Sequence[Request], interrupt=None,
                 processors: Sequence[Processor] = ()) -> list[Reply]:
        """Decode a batch of requests to completion."""
        if not reqs:
            return []
        timings: dict = {}
        for _ in self.steps(reqs, interrupt, processors, timings):
            pass
        return [self.reply_of(s, timings) for s in timings["states"]]

    def stream(self, req: Request, interrupt=None, processors: Sequence[Processor] = ()) -> Iterator[Event]:
        """Events of one request as they are produced: ``text`` deltas (think included),
        ``think_end`` once the CoT is closed, ``speech`` (new codes), then ``done``."""
        timings: dict = {}
        shown, think_sent = "", False
        for emitted in self.steps([req], interrupt, processors, timings):
            s = timings["states"][0]
            for _, tok, phase in emitted:
                if phase == SPEECH:
                    if tok != self.boundary:
                        yield Event("speech", codes=[tok])
                    continue
                if tok == self.text_end(req):
                    continue
                text = self.tok.decode(s.text_ids, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for the rest
                    continue
                if len(text) > len(shown) and text.startswith(shown):
                    yield Event("text", text=text[len(shown):])
                shown = text
                if not think_sent and THINK_CLOSE in text:
                    think_sent = True
                    yield Event("think_end", text=split_think(text)[0])
        yield Event("done", reply=self.reply_of(timings["states"][0], timings))
