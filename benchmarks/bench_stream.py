"""Streaming throughput: messages per second scored end to end at micro-batches of 500, against a transport-only
baseline and raw `predict` on the same rows, measured in the same run; added latency per message; 1 vs 2 consumers.

The broker is librdkafka's mock cluster in a process of its own (`python -m driftline.streaming.clients`), the
Kafka protocol on loopback. Every figure is taken on the same messages (demo rows as JSON, `--messages` of them):

- transport only: consume 500, decode the JSON, produce one answer each, flush, commit (no checks, no model);
- raw predict: the champion's `predict_proba` on the same rows as frames of 500, in memory, one OpenMP thread (as the
  consumer scores), measured right before and right after end to end, the mean of the two (on a shared machine the
  load moves: one short measurement on one side catches a quiet or a busy moment);
- end to end: `StreamScorer.process` (check as a request, score, answer, dead letters, prediction log, commit),
  timed from the first micro-batch to the last commit (the last micro-batch settled);
- 1 vs 2 consumers: `driftline stream` processes of one group on a topic of 4 partitions, timed from the messages'
  production to the last one scored (each reads its /health).

Target: end to end ≥ 0.5× the lower of transport only and raw predict. A message's added latency is the time its
micro-batch spends in the consumer, consumed to answered: its answers acknowledged by the broker, which the consumer
checks when it has scored the next micro-batch (p50/p99 over messages).

    python -m benchmarks.bench_stream [--messages 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml
from pydantic_core import to_json

from benchmarks.bench_drift import machine
from benchmarks.bench_serve import free_port, register_champion
from driftline.config import DriftlineConfig, load_config
from driftline.data.demo import make_frame
from driftline.modeling.fast import request_frame
from driftline.modeling.pipeline import feature_frame
from driftline.modeling.threads import limit_openmp
from driftline.registry import Registry, registry_folders
from driftline.streaming import clients
from driftline.streaming.consumer import StreamScorer
from driftline.streaming.telemetry import StreamMetrics

BATCH = 500
TARGET = 0.5
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "contract", "payment_method", "region"]


def start_broker() -> tuple[subprocess.Popen, str]:
    broker = subprocess.Popen(
        [sys.executable, "-m", "driftline.streaming.clients"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return broker, broker.stdout.readline().strip()


def stream_config(config_path: Path, broker: str, name: str) -> Path:
    data = yaml.safe_load(config_path.read_text())
    data["streaming"] = {
        "bootstrap_servers": broker,
        "input_topic": f"{name}-in",
        "output_topic": f"{name}-out",
        "dead_letter_topic": f"{name}-dead",
        "group_id": f"{name}-group",
        "batch_size": BATCH,
        "max_wait_seconds": 0.2,
    }
    path = config_path.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def messages(count: int) -> tuple[list[dict], list[tuple[bytes, bytes]]]:
    frame = make_frame(count, seed=11, days=56, id_offset=500_000)
    columns = ["customer_id", *FEATURES]
    rows = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict(orient="records")
    return rows, [(row["customer_id"].encode(), json.dumps(row).encode()) for row in rows]


def produce(cfg: DriftlineConfig, values: list[tuple[bytes, bytes]]) -> None:
    sender = clients.Sender(cfg.streaming)
    for key, value in values:
        sender.send(cfg.streaming.input_topic, value, key)
    sender.flush()


def transport_only(cfg: DriftlineConfig, count: int) -> tuple[float, list[float]]:
    """Consume, decode, produce, commit: messages/s and each micro-batch's seconds."""
    streaming = cfg.streaming
    consumer = clients.consumer(streaming, streaming.group_id)
    sender = clients.Sender(streaming)
    consumer.subscribe([streaming.input_topic])
    done, started, batches = 0, None, []
    while done < count:
        batch = [m for m in consumer.consume(BATCH, 0.5) if m.error() is None]
        if not batch:
            continue
        began = time.perf_counter()
        started = started or began
        for message in batch:
            row = json.loads(message.value())
            sender.send(streaming.output_topic, to_json({"id": row["customer_id"], "prediction": 0}), message.key())
        sender.flush()
        last: dict[int, int] = {}
        for message in batch:
            last[message.partition()] = message.offset() + 1
        consumer.commit(
            offsets=[clients.TopicPartition(streaming.input_topic, p, o) for p, o in last.items()], asynchronous=False
        )
        batches += [time.perf_counter() - began] * len(batch)
        done += len(batch)
    seconds = time.perf_counter() - started
    consumer.close()
    return count / seconds, batches


def raw_predict(cfg: DriftlineConfig, rows: list[dict]) -> float:
    """The champion's predict_proba on the same rows, 500 at a time, frames built beforehand: rows/s."""
    model = Registry(cfg).load_champion().model
    limit_openmp(1)  # as the consumer scores: on 2 busy cores more OpenMP threads only fight (10x slower here)
    frames = [
        feature_frame(request_frame(rows[i : i + BATCH], cfg.dataset), cfg.dataset) for i in range(0, len(rows), BATCH)
    ]
    model.predict_proba(frames[0])
    started = time.perf_counter()
    for frame in frames:
        model.predict_proba(frame)
    return len(rows) / (time.perf_counter() - started)


class AnsweredLatencies(StreamMetrics):
    """The consumer's figures, and each micro-batch's latency (consumed to answered on the broker) with its size."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.seconds: list[float] = []

    def batch(self, scored: int, dead: int) -> None:
        super().batch(scored, dead)
        self.sizes.append(scored + dead)

    def answered(self, seconds: float) -> None:
        super().answered(seconds)
        self.seconds.append(seconds)


def end_to_end(cfg: DriftlineConfig, count: int) -> tuple[float, list[float]]:
    """The consumer's own micro-batch path, in this process: messages/s (to the last commit) and each message's
    latency."""
    metrics = AnsweredLatencies()
    folder = registry_folders(cfg).prediction_log
    scorer = StreamScorer(cfg, Registry(cfg), folder, metrics=metrics, progress=lambda line: None)
    scorer.start()
    limit_openmp(1)  # as StreamScorer.run does
    started = None
    try:
        while scorer.totals["scored"] < count:
            batch = scorer.consumer.consume(BATCH, 0.5)
            if not batch:
                continue
            started = started or time.perf_counter()
            scorer.process(batch)
        scorer.settle()  # the last micro-batch answered, logged and committed
        seconds = time.perf_counter() - started
    finally:
        scorer.close()
    return count / seconds, [s for size, s in zip(metrics.sizes, metrics.seconds, strict=True) for _ in range(size)]


def consumers(config_path: Path, cfg: DriftlineConfig, how_many: int, values: list[tuple[bytes, bytes]]) -> float:
    """`driftline stream` × how_many in one group: messages/s from production to the last one scored."""
    ports = [free_port() for _ in range(how_many)]
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    processes = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "driftline"),
                "stream",
                "--config",
                str(config_path),
                "--metrics-port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]

    def health(port: int) -> dict:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        except httpx.HTTPError:
            return {}

    try:
        produce(cfg, values[: how_many * 4])  # the topic exists: each consumer gets its partitions
        deadline = time.monotonic() + 300
        while (
            sum(len(health(p).get("assigned_partitions", [])) for p in ports) < 4
            or sum(health(p).get("scored", 0) for p in ports) < how_many * 4
        ):
            if time.monotonic() > deadline:
                sys.exit("the consumers did not join their group within 300 s")
            time.sleep(0.5)
        started = time.perf_counter()
        produce(cfg, values[how_many * 4 :])
        while sum(health(p).get("scored", 0) for p in ports) < len(values):
            time.sleep(0.02)
        return (len(values) - how_many * 4) / (time.perf_counter() - started)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def percentiles(seconds: list[float]) -> str:
    p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args(argv)
    print(
        f"streaming benchmark: {args.messages:,} messages, micro-batches of {BATCH}; broker: librdkafka's mock cluster"
    )
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    broker, address = start_broker()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-stream-") as folder:
            base = register_champion(Path(folder))
            rows, values = messages(args.messages)
            configs = {name: stream_config(base, address, name) for name in ("transport", "scored", "one", "two")}
            cfg = {name: load_config(path) for name, path in configs.items()}
            for name in ("transport", "scored"):
                produce(cfg[name], values)
            transport, transport_latency = transport_only(cfg["transport"], args.messages)
            print(f"transport only (consume, decode, produce, commit): {transport:10,.0f} messages/s", flush=True)
            raw_before = raw_predict(cfg["scored"], rows)
            scored, latency = end_to_end(cfg["scored"], args.messages)
            raw_after = raw_predict(cfg["scored"], rows)
            raw = (raw_before + raw_after) / 2  # before and after: the load the end-to-end run saw, on both sides
            print(
                f"raw predict_proba on the same rows, 500 at a time:  {raw:10,.0f} rows/s "
                f"(mean of {raw_before:,.0f} before and {raw_after:,.0f} after end to end)",
                flush=True,
            )
            floor = min(transport, raw)
            print(
                f"end to end (checked, scored, answered, logged):   {scored:10,.0f} messages/s = {scored / floor:.2f}x"
            )
            print(
                f"latency per message, consumed to answered: end to end {percentiles(latency)}; "
                f"transport only {percentiles(transport_latency)}",
                flush=True,
            )
            one = consumers(configs["one"], cfg["one"], 1, values)
            two = consumers(configs["two"], cfg["two"], 2, values)
            print(
                f"driftline stream, 1 consumer: {one:,.0f} messages/s; 2 consumers (one group, 4 partitions): "
                f"{two:,.0f} messages/s = {two / one:.2f}x"
            )
    finally:
        broker.terminate()
        broker.wait(timeout=30)
    if scored < TARGET * floor:
        print(f"MISSED: end to end {scored / floor:.2f}x < {TARGET}x the lower of transport and raw predict")
        return 1
    print(f"target met: end to end ≥ {TARGET}x the lower of transport only and raw predict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
