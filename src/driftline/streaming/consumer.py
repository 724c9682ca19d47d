"""The streaming consumer: micro-batches consumed, checked, scored by the champion, answered, logged, committed.

One micro-batch, in order: up to `streaming.batch_size` messages (or what came within `max_wait_seconds`) → each
checked as a request row (`messages`; a bad one → the dead-letter topic with the reason) → the champion's answers
(`ModelFollower`, hot-swapped on promotion, read once per micro-batch) → the previous micro-batch settled (the
producer flushed: its answers and dead letters on the broker; its log written; then its offsets committed) → this
one's scored rows to the prediction log on the writer thread, unless a run before a crash logged them
(`prediction_log.logged_through`) → one answer per scored message to the output topic, keyed by its id, and its
dead letters, handed to the producer. It is settled when the next micro-batch has been scored (or at an empty poll,
a rebalance, the stop): the broker's acknowledgements and the log file of one overlap the checking and scoring of
the next, and no answer goes out while an earlier micro-batch is uncommitted. So a crash answers again at most the
one uncommitted micro-batch, with the same keys, and logs nothing twice. The broker going away stops the loop in a
flush or its poll until it is back (librdkafka reconnects); nothing is committed meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.errors import NoChampion
from driftline.modeling.pipeline import Predictions
from driftline.modeling.threads import limit_openmp
from driftline.monitoring.reference import DriftReference
from driftline.registry import ModelRef
from driftline.serving.follower import ModelFollower, ModelSource, ServedModel, Serving
from driftline.serving.log_buffer import logged_beside
from driftline.streaming import clients
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.messages import CheckedBatch, Incoming, MessageChecker, answers
from driftline.streaming.ranges import BatchRanges, measure
from driftline.streaming.streamed_rows import Columns, input_columns, unlogged_rows
from driftline.streaming.telemetry import StreamMetrics
from driftline.validation.profile import ReferenceProfile

log = logging.getLogger("driftline.stream")

FIRST_LOOK_SECONDS = 120  # at most this long to read the registry before consuming
REPORT_SECONDS = 10.0  # a progress line at most this often
# librdkafka's errors of a broker that cannot be reached: the client reconnects by itself; /health says so meanwhile
UNREACHABLE = frozenset({clients.KafkaError._ALL_BROKERS_DOWN, clients.KafkaError._TRANSPORT})


class StreamSource(ModelSource, Protocol):
    """What the consumer needs from the registry (driftline.registry.Registry is one)."""

    def load_reference(self, ref: ModelRef) -> DriftReference: ...


@dataclass(frozen=True)
class BatchOutcome:
    scored: int
    dead_letters: int
    version: str | None


class RangeWatch:
    """Ranges and unseen categories of each micro-batch against its version's training profile (loaded once)."""

    def __init__(self, source: StreamSource, cfg: DriftlineConfig):
        self.source, self.cfg = source, cfg
        self._profiles: dict[ModelRef, ReferenceProfile | None] = {}

    def measure(self, inputs: Columns, ref: ModelRef) -> BatchRanges | None:
        if ref not in self._profiles:
            try:
                self._profiles[ref] = self.source.load_reference(ref).profile
            except Exception as error:  # the reference is for measuring, not scoring: the stream goes on without
                log.warning("ranges not measured: no reference profile of version %s (%s)", ref.version, error)
                self._profiles[ref] = None
        if (profile := self._profiles[ref]) is None:
            return None
        ranges = measure(inputs, profile, self.cfg.dataset, self.cfg.validation)
        if over := ranges.over_limits(self.cfg.validation):
            log.warning("micro-batch over the validation limits in %s: %s", ", ".join(over), ranges.summary())
        return ranges


class StreamScorer:
    """One consumer of the group: `run()` until `stop()`."""

    def __init__(
        self,
        cfg: DriftlineConfig,
        source: StreamSource,
        log_dir: Path,
        metrics: StreamMetrics | None = None,
        progress: Callable[[str], None] = log.info,
    ):
        self.cfg, self.source, self.log_dir, self.progress = cfg, source, log_dir, progress
        self.streaming = streaming = cfg.streaming
        self.metrics = metrics or StreamMetrics()
        self.checker = MessageChecker(cfg)
        self.follower = ModelFollower(source, cfg.dataset, streaming.poll_seconds, False, self._swapped)
        self.sender = clients.Sender(streaming, on_error=self._broker_error)
        self.consumer = clients.consumer(
            streaming, streaming.group_id, on_error=self._broker_error, on_stats=self._stats
        )
        self.broker_problem: str | None = None
        self.assigned: list[int] = []
        self.totals = {"scored": 0, "dead_letters": 0, "batches": 0}
        self._logged: dict[int, int] = {}  # per input partition: the last offset in the prediction log
        self._uncommitted: dict[int, int] = {}  # per partition: the offset to commit (answered and logged)
        self._pending: Future | None = None  # the log of the last answered micro-batch, being written
        self._pending_offsets: dict[int, int] = {}  # that micro-batch's offsets: committed once its log is written
        self._unconfirmed: float | None = None  # when it was consumed, while its answers may not be on the broker
        self._range_watch = RangeWatch(source, cfg)
        self._stopping = threading.Event()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="driftline-stream-log")
        self._reported = time.monotonic()

    # --- the loop -------------------------------------------------------------------------------------------------
    def start(self) -> ServedModel:
        """Read the registry (the champion must exist), then join the consumer group."""
        self.follower.start()
        self.follower.looked.wait(FIRST_LOOK_SECONDS)
        champion = self.follower.serving.champion
        if champion is None:
            self.follower.stop()
            reason = self.follower.last_error or "train and promote one first: driftline train --config <config>"
            raise NoChampion(f"no champion of {self.cfg.registry.model_name} to score the stream with ({reason})")
        self.consumer.subscribe(
            [self.streaming.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        return champion

    def run(self) -> None:
        limit_openmp(1)  # as the online service's scoring threads: OpenMP threads only fight over the cores
        try:
            while not self._stopping.is_set():
                messages = self.consumer.consume(self.streaming.batch_size, self.streaming.max_wait_seconds)
                if messages:
                    self.process(messages)
                elif (
                    self._unconfirmed is not None
                    or self._pending is not None
                    or self._pending_offsets
                    or self._uncommitted
                ):
                    self.settle()  # nothing new: the last micro-batch committed (or one an outage refused, again)
                self._report()
        finally:
            self.close()

    def close(self) -> None:
        """Commit what was answered, leave the group (its partitions go to the others at once), stop following."""
        self.settle()
        self.consumer.close()
        self.follower.stop()
        self._writer.shutdown()

    def stop(self) -> None:
        self._stopping.set()

    # --- one micro-batch ------------------------------------------------------------------------------------------
    def process(self, messages: list[clients.Message]) -> BatchOutcome | None:
        """One micro-batch through; None when it held only the client's error events."""
        started = time.perf_counter()
        batch = []
        for message in messages:
            if message.error() is not None:
                self._broker_error(message.error())
                continue
            batch.append(
                Incoming(message.topic(), message.partition(), message.offset(), message.key(), message.value())
            )
        if not batch:
            return None
        checked = self.checker.split(batch)
        served = self._champion()  # read once: the micro-batch is answered by one version
        if served is None:
            return None  # stopped while waiting: the micro-batch is uncommitted, so it is consumed again
        predictions = served.predict(checked.rows) if checked.rows else None
        self.settle()  # no answer goes out while an earlier micro-batch is uncommitted
        if predictions is not None:
            self._pending = self._writer.submit(self._log, checked, predictions, served, started)
        topic_out, id_column = self.streaming.output_topic, self.cfg.dataset.id_column
        if predictions is not None:
            for key, value in answers(checked.accepted, checked.rows, predictions, served.ref.version, id_column):
                self.sender.send(topic_out, value, key)
        for rejected in checked.rejected:
            key, value, headers = dead_letter(rejected)
            self.sender.send(self.streaming.dead_letter_topic, value, key, headers)
        self._unconfirmed = started  # `settle` flushes: every answer and dead letter on the broker before the commit
        for incoming in batch:
            self._pending_offsets[incoming.partition] = incoming.offset + 1
        outcome = BatchOutcome(len(checked.rows), len(checked.rejected), served.ref.version)
        self._count(outcome)
        return outcome

    def settle(self) -> None:
        """The last answered micro-batch: wait for its answers and dead letters to be on the broker and for its log
        to be written, then commit its offsets (and any an outage left uncommitted). A refused message or a log that
        failed raises here, its offsets uncommitted."""
        if self._unconfirmed is not None:
            self.sender.flush()
            self.metrics.answered(time.perf_counter() - self._unconfirmed)
            self._unconfirmed, self.broker_problem = None, None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
        for partition, offset in self._pending_offsets.items():
            self._uncommitted[partition] = max(self._uncommitted.get(partition, 0), offset)
        self._pending_offsets = {}
        self._commit()

    def _champion(self) -> ServedModel | None:
        """The champion; while there is none (its alias removed), the micro-batch waits for one: nothing is lost."""
        waited = False
        while (champion := self.follower.serving.champion) is None and not self._stopping.is_set():
            if not waited:
                self.progress("no champion in the registry: waiting for one, nothing committed meanwhile")
                waited = True
            self._stopping.wait(self.streaming.poll_seconds)
        return champion

    def _log(self, checked: CheckedBatch, predictions: Predictions, served: ServedModel, started: float) -> int:
        """On the writer thread: the micro-batch's ranges measured; its scored rows not logged before into the
        prediction log (how many)."""
        inputs = input_columns(checked.rows, self.cfg.dataset, logged_beside(self.cfg))
        self.metrics.ranges(self._range_watch.measure(inputs, served.ref))
        if not self.cfg.scoring.log_predictions:
            return 0
        latency_ms = (time.perf_counter() - started) * 1000
        scored_at = datetime.now(UTC)
        fresh = unlogged_rows(
            self.cfg, inputs, checked, predictions, served.ref.version, latency_ms, scored_at, self._logged
        )
        if not fresh.num_rows:
            return 0
        prediction_log.append_streamed(fresh, self.log_dir, self.streaming.input_topic)
        partitions = fresh.column(prediction_log.KAFKA_PARTITION).to_numpy()
        offsets = fresh.column(prediction_log.KAFKA_OFFSET).to_numpy()
        self._logged.update({int(p): int(offsets[partitions == p].max()) for p in np.unique(partitions)})
        return fresh.num_rows

    def _count(self, outcome: BatchOutcome) -> None:
        self.metrics.batch(outcome.scored, outcome.dead_letters)
        self.totals["scored"] += outcome.scored
        self.totals["dead_letters"] += outcome.dead_letters
        self.totals["batches"] += 1

    # --- offsets and the group ------------------------------------------------------------------------------------
    def _commit(self, partitions: set[int] | None = None) -> None:
        topic = self.streaming.input_topic
        offsets = [
            clients.TopicPartition(topic, partition, offset)
            for partition, offset in self._uncommitted.items()
            if partitions is None or partition in partitions
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except clients.KafkaException as error:  # an outage or a rebalance: the answers are out; committed later
            log.warning("offsets not committed yet (%s): retried; a restart now would answer them again", error)
            return
        for committed in offsets:
            if self._uncommitted.get(committed.partition) == committed.offset:
                del self._uncommitted[committed.partition]

    def _on_assign(self, consumer, partitions: list[clients.TopicPartition]) -> None:
        self._logged = prediction_log.logged_through(self.log_dir, self.streaming.input_topic)
        self.assigned = sorted({*self.assigned, *(tp.partition for tp in partitions)})
        self.progress(f"assigned partitions {[tp.partition for tp in partitions]} of {self.streaming.input_topic}")

    def _on_revoke(self, consumer, partitions: list[clients.TopicPartition]) -> None:
        """Before the partitions go to another consumer: commit what was answered on them."""
        self.settle()
        self._forget(partitions)

    def _on_lost(self, consumer, partitions: list[clients.TopicPartition]) -> None:
        """Taken away without a chance to commit (the group moved on): their answers will be given again."""
        self._forget(partitions)

    def _forget(self, partitions: list[clients.TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        self.assigned = [p for p in self.assigned if p not in gone]
        for partition in gone:
            self._uncommitted.pop(partition, None)
            self._pending_offsets.pop(partition, None)

    # --- the champion, the broker, reports ------------------------------------------------------------------------
    def _swapped(self, serving: Serving, swaps: int) -> None:
        version = serving.champion.ref.version if serving.champion else None
        self.metrics.model_version.set(float(version) if version else 0)
        self.metrics.swaps.set(swaps)
        self.progress(f"now scoring with champion version {version}")

    def _broker_error(self, error: clients.KafkaError) -> None:
        if error.code() in UNREACHABLE:
            if self.broker_problem is None:
                self.progress(f"broker unreachable ({error.str()}): waiting for it; nothing is committed meanwhile")
            self.broker_problem = error.str()
        else:
            log.warning("Kafka: %s", error.str())

    def _stats(self, stats_json: str) -> None:
        if self.metrics.librdkafka_stats(stats_json) and self.broker_problem is not None:
            self.broker_problem = None
            self.progress("broker reachable again: consuming")

    def health(self) -> tuple[bool, dict]:
        champion = self.follower.serving.champion
        body = {
            "champion": champion.ref.version if champion else None,
            "assigned_partitions": self.assigned,
            "broker": self.broker_problem or "ok",
            **self.totals,
        }
        if champion is None:
            return False, body | {"reason": self.follower.last_error or "no champion loaded"}
        if self.broker_problem:
            return False, body | {"reason": f"broker unreachable: {self.broker_problem}"}
        return True, body

    def _report(self) -> None:
        if time.monotonic() - self._reported < REPORT_SECONDS:
            return
        self._reported = time.monotonic()
        if self.totals["batches"]:
            champion = self.follower.serving.champion
            self.progress(
                f"scored {self.totals['scored']}, dead letters {self.totals['dead_letters']} in "
                f"{self.totals['batches']} micro-batches; champion v{champion.ref.version if champion else '-'}"
            )
