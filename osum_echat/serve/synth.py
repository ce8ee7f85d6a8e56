"""Streaming speech synthesis for the server: codes in as they decode, PCM chunks out as ready.

The server accepts any *vocoder* with the token2wav streaming interface::

    vocoder.sample_rate -> int
    vocoder.stream(code_iter, voice=...) -> Iterator[np.ndarray]   # float32 chunks

(:class:`osum_echat.token2wav.Token2Wav` is one; the mini recipe's codec is another.)
:class:`SpeechStream` runs ``stream`` in a worker thread over a queue fed by :meth:`push`, so the
decode loop never waits for the vocoder. :meth:`cancel` stops it at once: the code iterator
raises inside ``stream``, so not even the final flush runs, and chunks made after the cancel
are dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Executor
from typing import Any, Callable, Iterator, Optional

import numpy as np

logger = logging.getLogger(__name__)

_END = object()


class _Cancelled(Exception):
    pass


def to_pcm16(x: np.ndarray) -> bytes:
    """float32 (N,) in [-1, 1] -> PCM16 little-endian bytes."""
    return (np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class SpeechStream:
    """One reply's synthesis. ``on_chunk(float32 array)`` and ``on_end(error or None)`` are
    called from the synthesis thread: a worker of ``executor`` when given (the server keeps a
    pool, so a vocoder's per-thread state, e.g. of its math libraries, is made once per worker,
    not once per reply), else a thread of its own."""

    running = 0  # streams whose vocoder is running now (all instances)
    _count_lock = threading.Lock()

    def __init__(self, vocoder: Any, voice: Any, on_chunk: Callable[[np.ndarray], None],
                 on_end: Callable[[Optional[str]], None], stream_kwargs: Optional[dict] = None,
                 executor: Optional[Executor] = None) -> None:
        self.vocoder = vocoder
        self.voice = voice
        self.on_chunk = on_chunk
        self.on_end = on_end
        self.kwargs = dict(stream_kwargs or {})
        self._q: queue.Queue = queue.Queue()
        self._cancelled = threading.Event()
        self.codes_in = 0
        self._finished = threading.Event()
        with SpeechStream._count_lock:
            SpeechStream.running += 1
        if executor is not None:
            executor.submit(self._run)
        else:
            threading.Thread(target=self._run, name="osum-synth", daemon=True).start()

    def push(self, codes: list[int]) -> None:
        self.codes_in += len(codes)
        self._q.put(list(codes))

    def finish(self) -> None:
        self._q.put(_END)

    def cancel(self) -> None:
        self._cancelled.set()
        self._q.put(_END)

    def join(self, timeout: Optional[float] = None) -> bool:
        return self._finished.wait(timeout)

    def _codes(self) -> Iterator[list[int]]:
        while True:
            item = self._q.get()
            if self._cancelled.is_set():
                raise _Cancelled()
            if item is _END:
                return
            yield item

    def _run(self) -> None:
        error = None
        try:
            for chunk in self.vocoder.stream(self._codes(), voice=self.voice, **self.kwargs):
                if self._cancelled.is_set():
                    break
                if len(chunk):
                    self.on_chunk(np.asarray(chunk, dtype=np.float32).reshape(-1))
        except _Cancelled:
            pass
        except Exception as err:  # a vocoder failure ends this reply's audio, not the server
            logger.exception("speech synthesis failed")
            error = f"{type(err).__name__}: {err}"
        try:
            self.on_end(error)
        except Exception:
            logger.exception("synthesis end callback failed")
        finally:
            with SpeechStream._count_lock:
                SpeechStream.running -= 1
            self._finished.set()
