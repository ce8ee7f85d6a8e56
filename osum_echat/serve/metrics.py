"""Prometheus metrics of the server (``GET /metrics``), on a registry of its own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.sessions = Gauge("osum_sessions_active", "Open realtime sessions", registry=r)
        self.refused = Counter("osum_sessions_refused", "Sessions refused (server full)", registry=r)
        self.responses = Counter("osum_responses", "Replies by outcome", ["outcome"], registry=r)
        self.errors = Counter("osum_client_errors", "Error events sent to clients", ["code"], registry=r)
        self.first_text = Histogram("osum_first_text_seconds", "End of user turn -> first text delta",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.first_audio = Histogram("osum_first_audio_seconds", "End of user turn -> first audio byte",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.stop = Histogram("osum_barge_in_stop_seconds", "Cancel -> decode row retired",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.rows = Gauge("osum_decode_rows", "Rows in the running decode batch", registry=r)
        self.queued = Gauge("osum_decode_queue", "Requests waiting for a decode row", registry=r)
        self.steps = Counter("osum_decode_steps", "Batched decode steps", registry=r)
        self.audio_seconds = Counter("osum_audio_out_seconds", "Reply audio sent", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
