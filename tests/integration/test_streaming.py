"""`driftline stream` as a user runs it, against a Kafka broker on loopback (librdkafka's mock cluster, the session's
`kafka_broker`): answers and dead letters read back from their topics, the prediction log, a SIGKILL mid-stream, a
broker that stops answering, a promotion mid-stream. Models from MLflow on SQLite in a workspace of the module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from testkit.paths import DEMO_CONFIG, DRIFTLINE, WEEK
from testkit.processes import cli_env, kill_hard, start_cli
from testkit.waiting import wait_for

from driftline.config import load_config
from driftline.data import prediction_log
from driftline.data.demo import CONCEPT_DRIFT, START, make_frame
from driftline.data.loading import load_batch
from driftline.registry import Registry, registry_folders
from driftline.stack import free_port
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

pytestmark = pytest.mark.integration

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "contract", "payment_method", "region"]
PARTITIONS = 4  # the mock broker's auto-created topics


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One registry: v1 the champion (trained on the reference), v2 registered after concept drift, not promoted."""
    root = tmp_path_factory.mktemp("streaming")
    cfg = load_config(write_config(root, "setup", "127.0.0.1:9"))
    registry = Registry(cfg)
    refs = []
    for name, frame in (
        ("reference", make_frame(2000, seed=1, days=56)),
        ("drifted", make_frame(2000, seed=4, start=START + 9 * WEEK, scenario=CONCEPT_DRIFT, id_offset=30_000)),
    ):
        path = root / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        batch = load_batch(path, cfg.dataset)
        source = DataSource(batch.fingerprint, batch.rows, batch.name, path.name)
        refs.append(registry.log_candidate(train_model(batch.frame, cfg), collect_lineage(cfg, [source]), name))
    registry.promote(refs[0])
    return root


def write_config(root: Path, name: str, broker: str, **streaming) -> Path:
    """The demo config on the module's workspace, streaming topics and group of its own (`name`)."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(root / "workspace")}
    data["model"]["params"] = {"max_iter": 40, "learning_rate": 0.1, "max_leaf_nodes": 15}
    data["monitoring"] = {"settle_seconds": 0}
    data["streaming"] = {
        "bootstrap_servers": broker,
        "input_topic": f"{name}-in",
        "output_topic": f"{name}-out",
        "dead_letter_topic": f"{name}-dead",
        "group_id": f"{name}-group",
        "poll_seconds": 0.5,
        "max_wait_seconds": 0.2,
        **streaming,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows_of(frame: pd.DataFrame) -> list[dict]:
    columns = ["customer_id", *FEATURES]
    return frame[columns].astype(object).where(frame[columns].notna(), None).to_dict(orient="records")


def produce(broker: str, topic: str, values: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": broker})
    for key, value in values:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0


def feed(broker: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    """The messages 100 at a time, 20 times a second: the consumer is busy when it is killed."""
    producer = Producer({"bootstrap.servers": broker})
    for start in range(0, len(values), 100):
        for key, value in values[start : start + 100]:
            producer.produce(topic, key=key, value=value)
        producer.poll(0)
        time.sleep(0.05)
    assert producer.flush(60) == 0


def messages_of(rows: list[dict]) -> list[tuple[bytes, bytes]]:
    return [(row["customer_id"].encode(), json.dumps(row).encode()) for row in rows]


def read_topic(broker: str, topic: str, at_least: int, timeout: float = 180) -> list[dict]:
    """Every message of the topic (once `at_least` are there): key, body, partition, offset, headers."""
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": f"reader-{time.monotonic_ns()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(got) < at_least:
            got += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
        got += [m for m in consumer.consume(1000, 1.0) if m.error() is None]  # anything past at_least
    finally:
        consumer.close()
    assert len(got) >= at_least, f"{topic}: {len(got)} messages within {timeout} s, expected {at_least}"
    return [{"key": m.key().decode(), "body": json.loads(m.value()), "headers": dict(m.headers() or [])} for m in got]


def logged(config_path: Path, topic: str) -> pd.DataFrame:
    files = prediction_log.log_files(registry_folders(load_config(config_path)).prediction_log)
    frame = prediction_log.read_window(files).frame
    return frame[frame[prediction_log.KAFKA_TOPIC] == topic] if len(frame) else frame


class Stream:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process, self.url = process, f"http://127.0.0.1:{port}"

    def health(self) -> dict:
        try:
            return httpx.get(f"{self.url}/health", timeout=5).json()
        except httpx.HTTPError:
            return {}

    def scored(self) -> int:
        return self.health().get("scored", 0)


def stream_env() -> dict[str, str]:
    """The environment of a user's shell: no Prefect server named (`driftline stream` needs none)."""
    return {key: value for key, value in os.environ.items() if key not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}


@contextmanager
def streaming(config_path: Path) -> Iterator[Stream]:
    """`driftline stream` in a process of its own, until it answers /health; stopped with SIGTERM (exit 0)."""
    port = free_port()
    process = start_cli(
        ["stream", "--config", str(config_path), "--metrics-port", str(port)], stream_env(), config_path.parent
    )
    stream = Stream(process, port)
    try:
        wait_for(lambda: stream.health().get("champion") or process.poll() is not None, 240, "driftline stream up")
        assert process.poll() is None, process.communicate()[1]
        yield stream
    finally:
        if process.poll() is None:
            process.terminate()
        out, err = process.communicate(timeout=60)
        print(out, err)


def test_stream_answers_each_message_dead_letters_bad_ones_replays_fixed_ones_and_monitor_reads_the_log(
    workspace, kafka_broker, prefect_api_url, tmp_path
):
    config_path = write_config(workspace, "users", kafka_broker.address)
    rows = rows_of(make_frame(1000, seed=7, start=START + 9 * WEEK, id_offset=70_000))
    values = messages_of(rows)
    missing_age = {k: v for k, v in rows[30].items() if k != "age"}
    bad = {
        10: b"not json at all",
        20: json.dumps(missing_age).encode(),
        40: json.dumps({**rows[40], "colour": "red"}).encode(),
        50: json.dumps({**rows[50], "tenure_months": "twelve"}).encode(),
    }
    values = [(key, bad.get(index, value)) for index, (key, value) in enumerate(values)]
    values[60] = (values[60][0], json.dumps({**rows[60], "age": 500}).encode())  # scored, and out of range
    with streaming(config_path) as stream:
        produce(kafka_broker.address, "users-in", values)
        answered = read_topic(kafka_broker.address, "users-out", 996)
        dead = read_topic(kafka_broker.address, "users-dead", 4)
        wait_for(lambda: stream.scored() == 996, 120, "996 scored in /health")
        metrics = httpx.get(f"{stream.url}/metrics").text

        fixed = tmp_path / "fixed.jsonl"
        fixed.write_text("\n".join(json.dumps(rows[index]) for index in bad) + "\n")
        replay = subprocess.run(
            [str(DRIFTLINE), "stream", "replay-dead-letters", "--config", str(config_path), "--fixed", str(fixed)],
            env=stream_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stderr
        assert "sent 4 messages" in replay.stdout
        after_replay = read_topic(kafka_broker.address, "users-out", 1000)

    assert len(answered) == 996 and {a["key"] for a in answered} == {
        row["customer_id"] for index, row in enumerate(rows) if index not in bad
    }
    assert all(a["body"]["id"] == a["key"] and a["body"]["model_version"] == "1" for a in answered)
    assert {a["key"] for a in after_replay} == {row["customer_id"] for row in rows}
    reasons = {d["key"]: d["body"]["reason"] for d in dead}
    assert reasons == {
        rows[10]["customer_id"]: "message: Invalid JSON: expected ident at line 1 column 2",
        rows[20]["customer_id"]: "age: Field required",
        rows[40]["customer_id"]: "colour: Extra inputs are not permitted",
        rows[50]["customer_id"]: "tenure_months: Input should be a valid number, unable to parse string as a number",
    }
    assert all(d["headers"]["driftline-reason"].decode() == d["body"]["reason"] for d in dead)
    assert 'driftline_stream_messages_total{outcome="dead_letter"} 4.0' in metrics
    assert 'driftline_stream_consumer_lag{partition="0",topic="users-in"}' in metrics
    out_of_range = re.search(r'driftline_stream_out_of_range_rows_total\{feature="age"\} (\d+)', metrics)
    assert out_of_range and int(out_of_range.group(1)) >= 1  # the age of 500 at least

    log = logged(config_path, "users-in")
    assert len(log) == 1000 and not log.duplicated([prediction_log.KAFKA_PARTITION, prediction_log.KAFKA_OFFSET]).any()
    assert set(log["customer_id"]) == {row["customer_id"] for row in rows}

    monitor = subprocess.run(
        [str(DRIFTLINE), "monitor", "--config", str(config_path)],
        env=cli_env(prefect_api_url),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert monitor.returncode == 0, monitor.stderr
    assert "drift in prediction log" in monitor.stdout  # "no drift in ..." or "drift in ...": the log was read


def test_consumer_killed_mid_stream_answers_again_with_the_same_keys_and_logs_each_message_once(
    workspace, kafka_broker
):
    config_path = write_config(workspace, "killed", kafka_broker.address, batch_size=100)
    rows = rows_of(make_frame(3000, seed=8, start=START + 9 * WEEK, id_offset=80_000))
    values = messages_of(rows)
    feeding = threading.Thread(target=feed, args=(kafka_broker.address, "killed-in", values))
    with streaming(config_path) as first:
        feeding.start()
        wait_for(lambda: first.scored() >= 800, 180, "800 messages scored before the kill", every=0.05)
        kill_hard(first.process)
    feeding.join()
    probe = Consumer({"bootstrap.servers": kafka_broker.address, "group.id": "killed-group"})
    committed = {
        tp.partition: max(tp.offset, 0)
        for tp in probe.committed([TopicPartition("killed-in", p) for p in range(PARTITIONS)], timeout=30)
    }
    probe.close()
    with streaming(config_path) as second:
        wait_for(lambda: second.scored() >= 3000 - sum(committed.values()), 180, "the rest scored after restart")
        answered = read_topic(kafka_broker.address, "killed-out", 3000)

    by_input = {}
    for answer in answered:
        source = answer["body"]["input"]
        by_input.setdefault((source["partition"], source["offset"]), []).append(answer)
    assert len(by_input) == 3000 and {a["key"] for a in answered} == {row["customer_id"] for row in rows}
    again = {where: copies for where, copies in by_input.items() if len(copies) > 1}
    print(f"answered twice: {len(again)} messages; committed at the kill: {committed}")
    assert len(again) <= 100  # at most the micro-batch in flight
    for (partition, offset), copies in again.items():
        assert offset >= committed[partition]  # only what was not committed is answered again
        assert {c["key"] for c in copies} == {copies[0]["key"]} and len({json.dumps(c["body"]) for c in copies}) == 1
    log = logged(config_path, "killed-in")
    assert len(log) == 3000 and not log.duplicated([prediction_log.KAFKA_PARTITION, prediction_log.KAFKA_OFFSET]).any()


def test_broker_that_stops_answering_is_waited_for_and_every_message_is_answered_after(workspace, kafka_broker):
    config_path = write_config(workspace, "paused", kafka_broker.address)
    rows = rows_of(make_frame(600, seed=9, start=START + 9 * WEEK, id_offset=90_000))
    with streaming(config_path) as stream:
        produce(kafka_broker.address, "paused-in", messages_of(rows[:300]))
        with kafka_broker.paused():  # mid-stream: fetches, answers and commits hang until it is back
            time.sleep(8)
        produce(kafka_broker.address, "paused-in", messages_of(rows[300:]))
        wait_for(lambda: stream.scored() >= 600, 180, "all 600 scored after the broker came back")
        answered = read_topic(kafka_broker.address, "paused-out", 600)
        assert stream.process.poll() is None
    assert {a["key"] for a in answered} == {row["customer_id"] for row in rows}
    assert len(logged(config_path, "paused-in")) == 600


def test_champion_promoted_mid_stream_answers_later_messages_with_the_new_version(workspace, kafka_broker):
    config_path = write_config(workspace, "promoted", kafka_broker.address)
    rows = rows_of(make_frame(400, seed=10, start=START + 9 * WEEK, id_offset=100_000))
    registry = Registry(load_config(config_path))
    with streaming(config_path) as stream:
        produce(kafka_broker.address, "promoted-in", messages_of(rows[:200]))
        wait_for(lambda: stream.scored() >= 200, 180, "the first 200 scored by v1")
        registry.promote(registry.version_ref("2"), reason="promoted mid-stream by the test")
        wait_for(lambda: stream.health().get("champion") == "2", 180, "v2 picked up by the stream")
        produce(kafka_broker.address, "promoted-in", messages_of(rows[200:]))
        answered = read_topic(kafka_broker.address, "promoted-out", 400)
    version = {a["key"]: a["body"]["model_version"] for a in answered}
    assert {version[row["customer_id"]] for row in rows[:200]} == {"1"}
    assert {version[row["customer_id"]] for row in rows[200:]} == {"2"}
    log = logged(config_path, "promoted-in")
    assert log.groupby(prediction_log.MODEL_VERSION).size().to_dict() == {"1": 200, "2": 200}
