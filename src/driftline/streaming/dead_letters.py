"""Dead letters: a message that cannot be scored goes to the dead-letter topic with the reason; a replay sends them
(or fixed versions of them, from a file) back to the input topic.

A dead letter keeps the input's key; its value is JSON `{"reason", "source": {topic, partition, offset}, "key",
"value"}` (the original value as text, or `value_base64` when it is not UTF-8) and its headers carry the reason and
the source, so a person can read why without decoding it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic_core import to_json

from driftline.config import DriftlineConfig
from driftline.errors import DataRejected, DriftlineError
from driftline.modeling.fast import category_text
from driftline.streaming import clients
from driftline.streaming.messages import MessageChecker, Rejected

REASON_HEADER = "driftline-reason"
SOURCE_HEADER = "driftline-source"
REPLAY_GROUP_SUFFIX = "-dead-letter-replay"  # the replay's own consumer group: each dead letter is replayed once
REPLAY_TIMEOUT_SECONDS = 120


def dead_letter(rejected: Rejected) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter of a refused message."""
    incoming = rejected.incoming
    body: dict = {
        "reason": rejected.reason,
        "source": {"topic": incoming.topic, "partition": incoming.partition, "offset": incoming.offset},
        "key": _text(incoming.key),
    }
    try:
        body["value"] = None if incoming.value is None else incoming.value.decode()
    except UnicodeDecodeError:
        body["value_base64"] = base64.b64encode(incoming.value).decode()
    headers = [(REASON_HEADER, rejected.reason.encode()), (SOURCE_HEADER, incoming.coordinates.encode())]
    return incoming.key, to_json(body), headers


def original(dead: bytes) -> tuple[bytes | None, bytes | None]:
    """(key, value) of the message a dead letter holds."""
    body = json.loads(dead)
    key = body["key"].encode() if body.get("key") is not None else None
    if "value_base64" in body:
        return key, base64.b64decode(body["value_base64"])
    return key, None if body.get("value") is None else body["value"].encode()


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="replace")


@dataclass(frozen=True)
class Replayed:
    sent: int
    source: str  # the dead-letter topic, or the file of fixed messages


def fixed_messages(path: Path, cfg: DriftlineConfig) -> list[tuple[bytes | None, bytes]]:
    """The fixed messages of a JSON-lines file (one message value per line), each checked as the stream checks it:
    one bad line refuses the whole file, naming each bad line."""
    checker, id_column = MessageChecker(cfg), cfg.dataset.id_column
    messages, problems = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        checked = checker.check(line.encode())
        if isinstance(checked, str):
            problems.append(f"line {number}: {checked}")
            continue
        identifier = category_text(checked.get(id_column)) if id_column else None
        messages.append((identifier.encode() if identifier is not None else None, line.strip().encode()))
    if problems:
        raise DataRejected(str(path), problems)
    if not messages:
        raise DataRejected(str(path), ["no messages: expected one JSON object per line"])
    return messages


def replay(cfg: DriftlineConfig, fixed: Path | None, progress: Callable[[str], None]) -> Replayed:
    """Fixed messages from `fixed`, else every dead letter not replayed before, produced to the input topic."""
    streaming = cfg.streaming
    sender = clients.Sender(streaming)
    if fixed is not None:
        messages = fixed_messages(fixed, cfg)
        for key, value in messages:
            sender.send(streaming.input_topic, value, key)
        sender.flush()
        return Replayed(len(messages), str(fixed))
    consumer = clients.consumer(streaming, streaming.group_id + REPLAY_GROUP_SUFFIX)
    try:
        sent = _replay_topic(consumer, sender, cfg, progress)
    finally:
        consumer.close()
    return Replayed(sent, streaming.dead_letter_topic)


def _replay_topic(
    consumer: clients.Consumer, sender: clients.Sender, cfg: DriftlineConfig, progress: Callable[[str], None]
) -> int:
    """The dead letters up to the end the topic had when the replay started; committed once they are sent."""
    topic, streaming = cfg.streaming.dead_letter_topic, cfg.streaming
    found = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        progress(f"no dead-letter topic {topic} yet: nothing to replay")
        return 0
    partitions = [clients.TopicPartition(topic, number) for number in sorted(found.partitions)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions}
    starts = {tp.partition: max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=30)}
    consumer.assign(partitions)
    positions = {p: start - 1 for p, start in starts.items()}  # the last offset sent back, per partition
    sent, deadline = 0, time.monotonic() + REPLAY_TIMEOUT_SECONDS
    while any(positions[p] + 1 < end for p, end in ends.items()):
        if time.monotonic() > deadline:
            raise DriftlineError(f"the dead letters of {topic} were not all read within {REPLAY_TIMEOUT_SECONDS} s")
        for message in consumer.consume(500, 1.0):
            if message.error() is not None or message.offset() >= ends[message.partition()]:
                continue
            positions[message.partition()] = message.offset()
            key, value = original(message.value())
            sender.send(streaming.input_topic, value, key)
            sent += 1
    sender.flush()
    progress(f"{sent} dead letters of {topic} sent back to {streaming.input_topic}")
    done = [clients.TopicPartition(topic, p, position + 1) for p, position in positions.items() if position >= 0]
    if done:
        consumer.commit(offsets=done, asynchronous=False)
    return sent
