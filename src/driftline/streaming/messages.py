"""Messages in and out: each input checked as the online service checks a request row, each answer's key and body.

An input message's value is one JSON object, a row as `POST /predict` takes it (`serving.app.request_model`: typed
by the config, nulls where allowed, unknown fields refused). One that is not is a dead letter with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from driftline.config import DriftlineConfig
from driftline.modeling.fast import Row, category_text
from driftline.modeling.pipeline import Predictions
from driftline.serving.app import request_model

MAX_REASONS = 5  # problems of one message named in its reason


class Incoming(NamedTuple):
    """One consumed message: where it sits in the topic, its key and its value as received (a tuple: a micro-batch
    makes hundreds)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class Rejected:
    incoming: Incoming
    reason: str


@dataclass(frozen=True)
class CheckedBatch:
    """A micro-batch split into the rows to score (with their messages) and the messages refused, in input order."""

    accepted: list[Incoming]
    rows: list[Row]
    rejected: list[Rejected]


class MessageChecker:
    """The online service's row model (`request_model`), applied to one message at a time."""

    def __init__(self, cfg: DriftlineConfig):
        request = request_model(cfg)
        (self.row_model,) = get_args(request.model_fields["rows"].annotation)
        self.row_model: type[BaseModel]
        # the model's own validator, called directly: `model_validate_json`'s checks and errors, at half the cost
        self.validate_json = self.row_model.__pydantic_validator__.validate_json

    def check(self, value: bytes | None) -> Row | str:
        """The validated row, or why the message cannot be scored (one line)."""
        if not value:
            return "empty message: expected one JSON object with the model's features"
        try:
            row = self.validate_json(value)
        except ValidationError as error:
            return reason_of(error)
        return dict(row.__dict__)  # its fields are scalars: model_dump's copy, at a tenth of the cost

    def split(self, batch: Sequence[Incoming]) -> CheckedBatch:
        accepted, rows, rejected = [], [], []
        for incoming in batch:
            checked = self.check(incoming.value)
            if isinstance(checked, str):
                rejected.append(Rejected(incoming, checked))
            else:
                accepted.append(incoming)
                rows.append(checked)
        return CheckedBatch(accepted, rows, rejected)


def reason_of(error: ValidationError) -> str:
    """'age: Input should be a valid number; foo: Extra inputs are not permitted' (the first few problems)."""
    problems = []
    for detail in error.errors(include_url=False)[:MAX_REASONS]:
        field = ".".join(str(part) for part in detail["loc"]) or "message"
        problems.append(f"{field}: {detail['msg']}")
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def output_key(incoming: Incoming, row: Row, id_column: str | None) -> bytes:
    """The answer's key: the row's id; else the input's key; else where the input sits. The same on a replay."""
    identifier = category_text(row.get(id_column)) if id_column else None
    if identifier is not None:
        return identifier.encode()
    return incoming.key if incoming.key is not None else incoming.coordinates.encode()


def answers(
    accepted: Sequence[Incoming], rows: Sequence[Row], predictions: Predictions, version: str, id_column: str | None
) -> list[tuple[bytes, bytes]]:
    """(key, value) of each answer: the online service's `Prediction` fields and the input's coordinates, as compact
    JSON. What the answers share (version, class names, each distinct label) is encoded once, the probabilities in
    one call for the micro-batch: no dict and no encoder call per answer."""
    shared = b'"model_version":' + to_json(version) + b',"served_by":"champion","input":{"topic":'
    labels = predictions.labels.tolist()
    encoded = {label: to_json(label) for label in set(labels)}
    if predictions.proba is None:
        probabilities = [b"null"] * len(labels)
    else:  # "[[0.1,0.9],[0.7,0.3]]": numbers never hold "," or "]", so each row is one split away
        names = [to_json(str(label)) + b":" for label in predictions.classes]
        cells = to_json(predictions.proba.tolist())[2:-2].split(b"],[")
        probabilities = [b"{" + b",".join(map(bytes.__add__, names, cell.split(b","))) + b"}" for cell in cells]
    topics = {topic: to_json(topic) for topic in {incoming.topic for incoming in accepted}}
    out = []
    for incoming, row, label, probability in zip(accepted, rows, labels, probabilities, strict=True):
        identifier = category_text(row.get(id_column)) if id_column else None
        value = b'{"id":%b,"prediction":%b,"probabilities":%b,%b%b,"partition":%d,"offset":%d}}' % (
            b"null" if identifier is None else to_json(identifier),
            encoded[label],
            probability,
            shared,
            topics[incoming.topic],
            incoming.partition,
            incoming.offset,
        )
        out.append((output_key(incoming, row, id_column), value))
    return out
