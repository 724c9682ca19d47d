"""The consumer's own Prometheus figures and its small HTTP server: `/metrics` (messages, dead letters, consumer
lag, latency, the champion's version) and `/health` (200 while it scores, 503 with the reason when it cannot)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from driftline.streaming.ranges import BatchRanges


class StreamMetrics:
    """Figures of one consumer process (its own registry, so tests may run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "driftline_stream_messages",
            "Input messages by outcome: scored, or dead_letter",
            ["outcome"],
            registry=self.registry,
        )
        self.batches = Counter("driftline_stream_batches", "Micro-batches scored and answered", registry=self.registry)
        self.lag = Gauge(
            "driftline_stream_consumer_lag",
            "Messages of the input topic not yet consumed, per partition (librdkafka's statistics)",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "driftline_stream_batch_latency_seconds",
            "Per micro-batch: consumed to answered (its answers acknowledged by the broker, which the consumer checks "
            "when the next micro-batch is scored), the latency it adds to each of its messages at most",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.out_of_range = Counter(
            "driftline_stream_out_of_range_rows",
            "Scored rows outside the training range of a feature (widened by validation.range_tolerance)",
            ["feature"],
            registry=self.registry,
        )
        self.unseen = Counter(
            "driftline_stream_unseen_category_rows",
            "Scored rows with a category the champion never saw in training",
            ["feature"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "driftline_stream_model_version", "Registered version of the champion scoring", registry=self.registry
        )
        self.swaps = Gauge("driftline_stream_model_swaps", "Times the champion changed", registry=self.registry)

    def batch(self, scored: int, dead: int) -> None:
        self.messages.labels("scored").inc(scored)
        self.messages.labels("dead_letter").inc(dead)
        self.batches.inc()

    def answered(self, seconds: float) -> None:
        """A micro-batch's answers are on the broker, `seconds` after it was consumed."""
        self.latency.observe(seconds)

    def ranges(self, ranges: BatchRanges | None) -> None:
        if ranges is None:
            return
        for column, count in ranges.out_of_range.items():
            self.out_of_range.labels(column).inc(count)
        for column, count in ranges.unseen.items():
            self.unseen.labels(column).inc(count)

    def librdkafka_stats(self, stats_json: str) -> bool:
        """The consumer lag of each assigned partition, from librdkafka's statistics; whether a broker is up."""
        stats = json.loads(stats_json)
        for topic, details in stats.get("topics", {}).items():
            for partition, figures in details.get("partitions", {}).items():
                lag = figures.get("consumer_lag", -1)
                if partition != "-1" and lag >= 0:
                    self.lag.labels(topic, partition).set(lag)
        return any(broker.get("state") == "UP" for broker in stats.get("brokers", {}).values())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """`/metrics` and `/health` on a thread; `health()` gives (healthy, what it says)."""

    def __init__(self, metrics: StreamMetrics, health: Callable[[], tuple[bool, dict]], host: str, port: int):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N805 - the server's `self` is the closure's
                if handler.path == "/metrics":
                    handler._reply(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif handler.path == "/health":
                    healthy, body = health()
                    handler._reply(200 if healthy else 503, json.dumps(body).encode(), "application/json")
                else:
                    handler._reply(404, b'{"detail": "GET /metrics or /health"}', "application/json")

            def _reply(handler, status: int, body: bytes, content_type: str) -> None:  # noqa: N805
                try:
                    handler.send_response(status)
                    handler.send_header("Content-Type", content_type)
                    handler.send_header("Content-Length", str(len(body)))
                    handler.end_headers()
                    handler.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the caller gave up waiting: nobody to answer
                    pass

            def log_message(handler, *args) -> None:  # noqa: N805 - quiet: no line per scrape
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="driftline-stream-metrics", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
