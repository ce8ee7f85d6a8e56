"""Continuous batching of many sessions' replies on one model.

One worker thread owns the model. Between two decode steps it

1. retires finished and cancelled rows (``DynamicCache.batch_select_indices``),
2. admits waiting requests: prefills them (together) and merges their KV cache into the running
   batch, left-padding the shorter side (the attention mask hides the padding; each row keeps its
   own position ids, so a row decodes exactly as it would alone),
3. runs one step for every live row with the :class:`~osum_echat.generate.decoder.Decoder`'s own
   head / processor / stop-rule code, and hands each row's token to its job's ``sink``.

The waiting queue is bounded (``max_queue``): :meth:`Scheduler.submit` raises :class:`Busy`
instead of letting latency grow without bound. A cancelled job leaves the batch before the next
step, so decoding stops within one step of :meth:`Job.cancel`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from osum_echat.generate.decoder import SPEECH, TEXT, Decoder, Processor, Request, RowState

logger = logging.getLogger(__name__)

# sink(kind, payload), called on the scheduler thread: "token" -> (token, phase, RowState)
# (read the state inside the call: it changes at the next step); "done" -> Reply;
# "error" -> message. A sink must be quick (it holds up every row).
Sink = Callable[[str, object], None]


class Busy(RuntimeError):
    """The admission queue is full."""


@dataclass
class SchedulerConfig:
    max_batch: int = 8   # rows decoded together
    max_queue: int = 8   # requests waiting for a row; one more is refused (Busy)

    def validate(self) -> None:
        if self.max_batch < 1 or self.max_queue < 0:
            raise ValueError("scheduler: max_batch >= 1 and max_queue >= 0 required")


@dataclass
class Job:
    """One request in the scheduler."""

    req: Request
    sink: Sink
    cancelled: threading.Event = field(default_factory=threading.Event)
    state: Optional[RowState] = None
    timings: dict = field(default_factory=dict)
    t_submit: float = field(default_factory=time.perf_counter)
    last: tuple[int, str] = (0, TEXT)  # the token to feed next and its phase

    def cancel(self) -> None:
        self.cancelled.set()


class _Batch:
    """The running rows: jobs, KV cache (B, heads, L, d), mask (B, L), next positions (B, 1),
    last hidden states (B, H)."""

    def __init__(self, cache_config) -> None:
        self.cache_config = cache_config  # the LLM config (DynamicCache layer types)
        self.reset()

    def reset(self) -> None:
        self.jobs: list[Job] = []
        self.cache = None
        self.mask: Optional[torch.Tensor] = None
        self.pos: Optional[torch.Tensor] = None
        self.h: Optional[torch.Tensor] = None

    def select(self, keep: list[int]) -> None:
        if not keep:
            self.reset()
            return
        idx = torch.tensor(keep, device=self.mask.device)
        self.jobs = [self.jobs[i] for i in keep]
        self.cache.batch_select_indices(idx)
        self.mask, self.pos, self.h = self.mask[idx], self.pos[idx], self.h[idx]
        lead = int((self.mask.sum(0) == 0).long().cumprod(0).sum())  # all-padding left columns
        if lead:
            self.cache = _rebuild(self.cache, lambda t: t[:, :, lead:], self.cache_config)
            self.mask = self.mask[:, lead:]


def _rebuild(cache, fn, config):
    """A new DynamicCache with ``fn`` applied to every layer's keys and values."""
    from transformers import DynamicCache

    return DynamicCache([(fn(k), fn(v)) for k, v, *_ in cache], config=config)


def _left_pad(t: torch.Tensor, length: int) -> torch.Tensor:
    """(B, heads, L, d) -> (B, heads, length, d) with zeros on the left."""
    extra = length - t.shape[2]
    return t if extra == 0 else torch.nn.functional.pad(t, (0, 0, extra, 0))


class Scheduler:
    """Decodes every submitted :class:`Request` in one continuously batched loop."""

    def __init__(self, decoder: Decoder, cfg: SchedulerConfig | None = None,
                 processors: Sequence[Processor] = ()) -> None:
        self.dec = decoder
        self.processors = tuple(processors)  # extra logits processors for every row (as Decoder.steps)
        self.cfg = cfg or SchedulerConfig()
        self.cfg.validate()
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._batch = _Batch(decoder.body.config)
        self._stop = False
        self._admitting = 0  # jobs taken off the queue, being prefilled (they hold rows)
        self._thread: Optional[threading.Thread] = None
        self.steps = 0  # decode steps run (all rows together count once)
        self.on_step: Optional[Callable[[int], None]] = None  # metrics hook: rows in the step

    # ------------------------------------------------------------------ public
    def start(self) -> "Scheduler":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="osum-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, req: Request, sink: Sink) -> Job:
        """Queue ``req``; raises :class:`Busy` when ``max_queue`` requests already wait."""
        job = Job(req, sink)
        with self._cond:
            free_rows = max(self.cfg.max_batch - len(self._batch.jobs) - self._admitting, 0)
            if len(self._queue) >= free_rows + self.cfg.max_queue:
                raise Busy(f"{len(self._queue)} requests already wait for a decode row "
                           f"(max_queue={self.cfg.max_queue}, max_batch={self.cfg.max_batch})")
            self._queue.append(job)
            self._cond.notify_all()
        return job

    @property
    def active(self) -> int:
        """Rows in the running batch."""
        return len(self._batch.jobs)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def idle(self) -> bool:
        return not self._batch.jobs and not self._queue

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                while not self._stop and not self._queue and not self._batch.jobs:
                    self._cond.wait(0.5)
                if self._stop:
                    break
            try:
                self._iteration()
            except Exception as err:  # a model failure must not kill the server: fail the rows
                logger.exception("scheduler step failed; failing %d rows", len(self._batch.jobs))
                for job in self._batch.jobs:
                    self._emit(job, "error", f"{type(err).__name__}: {err}")
                self._batch.reset()
        for job in self._batch.jobs + list(self._queue):
            self._emit(job, "error", "server shutting down")

    @torch.inference_mode()
    def _iteration(self) -> None:
        self._retire()
        self._admit()
        if not self._batch.jobs:
            return
        self._sample()
        self._retire()
        if self._batch.jobs:
            self._forward()

    def _emit(self, job: Job, kind: str, payload: object) -> None:
        try:
            job.sink(kind, payload)
        except Exception:  # a broken sink (client gone) only loses its own row
            logger.exception("sink of %s failed; cancelling it", job.req.key)
            job.cancel()

    def _admit(self) -> None:
        with self._cond:
            dropped = [j for j in self._queue if j.cancelled.is_set()]
            if dropped:  # cancelled while waiting: free their queue places now
                self._queue = collections.deque(j for j in self._queue if not j.cancelled.is_set())
            room = self.cfg.max_batch - len(self._batch.jobs)
            new = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
            self._admitting = len(new)
        try:
            self._prefill(new, dropped)
        finally:
            with self._cond:
                self._admitting = 0

    def _prefill(self, new: list[Job], dropped: list[Job]) -> None:
        for j in dropped:
            self._emit(j, "error", "cancelled before a decode row was free")
        if not new:
            return
        from transformers import DynamicCache

        t0 = time.perf_counter()
        try:
            emb, mask, pos = self.dec._prefill_inputs([j.req for j in new])
            cache = DynamicCache(config=self.dec.body.config)
            out = self.dec.body(inputs_embeds=emb, attention_mask=mask, position_ids=pos,
                                past_key_values=cache, use_cache=True)
        except Exception as err:
            logger.exception("prefill of %d requests failed", len(new))
            for j in new:
                self._emit(j, "error", f"prefill failed: {type(err).__name__}: {err}")
            return
        now = time.perf_counter()
        for j in new:
            r = j.req
            j.state = RowState(r, SPEECH if r.start_in_speech else TEXT, self.dec._generator(r),
                               boundaries=1 if r.start_in_speech else 0)
            j.timings.update(queue_ms=(t0 - j.t_submit) * 1e3, prefill_ms=(now - t0) * 1e3,
                             prompt_tokens=int(emb.shape[1]))
        if mask is None:
            mask = torch.ones(emb.shape[:2], dtype=torch.long, device=emb.device)
        self._merge(new, cache, mask, pos[:, -1:] + 1, out.last_hidden_state[:, -1])

    def _merge(self, jobs: list[Job], cache, mask: torch.Tensor, pos: torch.Tensor, h: torch.Tensor) -> None:
        b = self._batch
        if not b.jobs:
            b.jobs, b.cache, b.mask, b.pos, b.h = list(jobs), cache, mask, pos, h
            return
        from transformers import DynamicCache

        width = max(b.mask.shape[1], mask.shape[1])
        layers = [(torch.cat([_left_pad(ka, width), _left_pad(kb, width)]),
                   torch.cat([_left_pad(va, width), _left_pad(vb, width)]))
                  for (ka, va, *_), (kb, vb, *_) in zip(b.cache, cache)]
        pad = lambda m: torch.nn.functional.pad(m, (width - m.shape[1], 0))  # noqa: E731
        b.cache = DynamicCache(layers, config=self.dec.body.config)
        b.mask = torch.cat([pad(b.mask), pad(mask)])
        b.pos, b.h = torch.cat([b.pos, pos]), torch.cat([b.h, h])
        b.jobs += jobs

    def _sample(self) -> None:
        b = self._batch
        states = [j.state for j in b.jobs]
        logits = self.dec._logits(states, b.h)
        now = time.perf_counter()
        for i, job in enumerate(b.jobs):
            s = job.state
            if s.done:
                continue
            phase = s.phase
            tok = self._choose(s, logits[i])
            self.dec._accept(s, tok)
            job.last = (tok, phase)
            if s.n_new == 1:
                job.timings["first_token_ms"] = (now - job.t_submit) * 1e3
            self._emit(job, "token", (tok, phase, s))
        self.steps += 1
        if self.on_step is not None:
            self.on_step(len(b.jobs))

    def _choose(self, s: RowState, logits: torch.Tensor) -> int:
        from osum_echat.generate.processors import choose

        return choose(self.dec._process(s, logits, self.processors), s.req.policy, s.gen)

    def _retire(self) -> None:
        b = self._batch
        keep = []
        for i, job in enumerate(b.jobs):
            if job.cancelled.is_set() and not job.state.done:
                job.state.done, job.state.stop_reason = True, "interrupted"
            if job.state.done:
                self._finish(job)
            else:
                keep.append(i)
        if len(keep) != len(b.jobs):
            b.select(keep)

    def _finish(self, job: Job) -> None:
        t = job.timings
        t["total_ms"] = (time.perf_counter() - job.t_submit) * 1e3
        t["decode_ms"] = t["total_ms"] - t.get("queue_ms", 0.0) - t.get("prefill_ms", 0.0)
        self._emit(job, "done", self.dec.reply_of(job.state, t))

    def _forward(self) -> None:
        b = self._batch
        toks = [j.last[0] for j in b.jobs]
        kinds = [j.last[1] for j in b.jobs]
        b.mask = torch.cat([b.mask, b.mask.new_ones(len(b.jobs), 1)], dim=1)
        out = self.dec.body(inputs_embeds=self.dec._embed_step(kinds, toks), attention_mask=b.mask,
                            position_ids=b.pos, past_key_values=b.cache, use_cache=True)
        b.h = out.last_hidden_state[:, -1]
        b.pos = b.pos + 1
