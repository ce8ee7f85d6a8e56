"""Continuous batching gives each row the tokens it would get alone; rows join, leave, cancel."""

from __future__ import annotations

import os
import sys
import threading

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helpers import greedy_request, make_bot, tone  # noqa: E402


class Collector:
    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.reply = None
        self.error = None
        self.done = threading.Event()

    def __call__(self, kind, payload) -> None:
        if kind == "token":
            self.tokens.append(payload[0])
        elif kind == "done":
            self.reply = payload
            self.done.set()
        else:
            self.error = payload
            self.done.set()


@pytest.fixture(scope="module")
def bot(tiny_tokenizer):
    return make_bot(tiny_tokenizer)


def test_staggered_rows_match_solo_decoding(bot):
    from osum_echat.serve.scheduler import Scheduler, SchedulerConfig

    wavs = [torch.from_numpy(tone(d, f, seed=i)) for i, (d, f) in enumerate([(0.6, 200), (1.1, 330), (0.8, 150)])]
    tasks = ["s2s", "s2t_chat", "s2s"]
    solo = [bot.decoder.generate([greedy_request(bot, t, w, 24)])[0] for t, w in zip(tasks, wavs)]
    sched = Scheduler(bot.decoder, SchedulerConfig(max_batch=4, max_queue=4))
    cols = [Collector() for _ in wavs]
    # submit the first row, let it run a few steps, then the others join mid-way
    sched.start()
    try:
        sched.submit(greedy_request(bot, tasks[0], wavs[0], 24), cols[0])
        while len(cols[0].tokens) < 3:
            threading.Event().wait(0.01)
        for i in (1, 2):
            sched.submit(greedy_request(bot, tasks[i], wavs[i], 24), cols[i])
        for c in cols:
            assert c.done.wait(60)
    finally:
        sched.stop()
    for c, ref in zip(cols, solo):
        assert c.error is None
        assert c.reply.text_ids == ref.text_ids
        assert c.reply.speech_codes == ref.speech_codes
    assert sched.idle() and sched.active == 0


def test_cancel_stops_row_and_queue_is_bounded(bot):
    from osum_echat.serve.scheduler import Busy, Scheduler, SchedulerConfig

    wav = torch.from_numpy(tone(0.5))
    sched = Scheduler(bot.decoder, SchedulerConfig(max_batch=1, max_queue=1))
    first, second = Collector(), Collector()
    job = sched.submit(greedy_request(bot, "s2s", wav, 500), first)   # takes the only row (once started)
    sched.submit(greedy_request(bot, "s2s", wav, 5), second)          # waits in the queue
    with pytest.raises(Busy, match="max_queue=1"):
        sched.submit(greedy_request(bot, "s2s", wav, 5), Collector())
    sched.start()
    try:
        while len(first.tokens) < 2:
            threading.Event().wait(0.01)
        job.cancel()
        assert first.done.wait(30) and second.done.wait(30)
    finally:
        sched.stop()
    assert first.reply.stop_reason == "interrupted" and len(first.tokens) < 500
    assert second.reply is not None and sched.idle()
