"""Streaming without a broker: each message checked as a request row, answers' keys, dead letters and their replay
file, a micro-batch's ranges, the prediction log's streamed files, the streaming config and its secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from driftline.config.streaming import KAFKA_BOOTSTRAP_ENV, KAFKA_PASSWORD_ENV, StreamingConfig
from driftline.data import prediction_log
from driftline.data.prediction_log import KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC
from driftline.errors import ConfigError, DataRejected
from driftline.modeling.fast import request_frame
from driftline.modeling.pipeline import Predictions
from driftline.streaming.clients import connection_settings
from driftline.streaming.dead_letters import REASON_HEADER, dead_letter, fixed_messages, original
from driftline.streaming.messages import Incoming, MessageChecker, Rejected, answers, output_key
from driftline.streaming.ranges import measure
from driftline.streaming.streamed_rows import input_columns, unlogged_rows
from driftline.validation.profile import ReferenceProfile

ROW = {
    "customer_id": "C1",
    "tenure_months": 12.0,
    "monthly_charges": 70.5,
    "support_calls": 1,
    "age": 40,
    "contract": "one-year",
    "payment_method": "e-check",
    "region": "north",
}


def incoming(value: bytes | None, offset: int = 0, key: bytes | None = b"k", partition: int = 0) -> Incoming:
    return Incoming("in", partition, offset, key, value)


@pytest.mark.parametrize(
    "value,reason",
    [
        (b"{not json", "message: Invalid JSON: key must be a string at line 1 column 2"),
        (b"", "empty message: expected one JSON object with the model's features"),
        (None, "empty message: expected one JSON object with the model's features"),
        (b"[1, 2]", "message: Input should be an object"),
        (json.dumps({k: v for k, v in ROW.items() if k != "age"}).encode(), "age: Field required"),
        (json.dumps({**ROW, "colour": "red"}).encode(), "colour: Extra inputs are not permitted"),
        (
            json.dumps({**ROW, "tenure_months": "twelve"}).encode(),
            "tenure_months: Input should be a valid number, unable to parse string as a number",
        ),
        (json.dumps({**ROW, "age": float("inf")}).encode(), "age: Input should be a finite number"),
    ],
    ids=["not json", "empty", "null message", "not an object", "missing feature", "unknown field", "wrong type", "inf"],
)
def test_a_message_the_service_would_refuse_is_refused_with_the_services_reason(cfg, value, reason):
    assert MessageChecker(cfg).check(value) == reason


def test_nulls_are_taken_where_a_request_takes_them_and_whole_numbers_read_as_category_text(cfg):
    checked = MessageChecker(cfg).check(json.dumps({**ROW, "age": None, "region": None, "customer_id": 7}).encode())
    assert checked["age"] is None and checked["region"] is None and checked["customer_id"] == 7


def test_a_micro_batch_splits_into_rows_to_score_and_refused_messages_in_input_order(cfg):
    good = json.dumps(ROW).encode()
    split = MessageChecker(cfg).split([incoming(good, 0), incoming(b"x", 1), incoming(good, 2)])
    assert [m.offset for m in split.accepted] == [0, 2] and len(split.rows) == 2
    assert [r.incoming.offset for r in split.rejected] == [1]


def test_an_answer_is_keyed_by_the_id_else_the_input_key_else_where_the_input_sits(cfg):
    assert output_key(incoming(b"", key=b"k"), {"customer_id": 42}, "customer_id") == b"42"
    assert output_key(incoming(b"", key=b"k"), {"customer_id": None}, "customer_id") == b"k"
    assert output_key(incoming(b"", offset=9, key=None, partition=3), {}, None) == b"in/3/9"


def test_an_answer_carries_the_prediction_probabilities_version_and_the_input_it_answers():
    predictions = Predictions(np.array([1]), np.array([[0.25, 0.75]]), np.array([0, 1]))
    [(key, value)] = answers([incoming(b"", offset=5)], [ROW], predictions, "3", "customer_id")
    assert key == b"C1"
    assert json.loads(value) == {
        "id": "C1",
        "prediction": 1,
        "probabilities": {"0": 0.25, "1": 0.75},
        "model_version": "3",
        "served_by": "champion",
        "input": {"topic": "in", "partition": 0, "offset": 5},
    }


def test_answers_are_the_json_of_the_services_prediction_fields_for_any_labels_and_numbers():
    proba = np.array([[1e-05, 1 - 1e-05], [0.0, 1.0], [1 / 3, 2 / 3]])
    rows = [ROW, {**ROW, "customer_id": 'say "hi"\\'}, {**ROW, "customer_id": None}]
    messages = [incoming(b"", offset=i, partition=2) for i in range(3)]
    for labels, classes, probabilities in [
        (np.array(["no, never", "yes", "yes"]), np.array(["no, never", "yes"]), proba),
        (np.array([0.5, -2.25, 1e300]), np.array([]), None),
    ]:
        got = answers(messages, rows, Predictions(labels, probabilities, classes), "12", "customer_id")
        for (key, value), message, row, label, index in zip(
            got, messages, rows, labels.tolist(), range(3), strict=True
        ):
            assert key == output_key(message, row, "customer_id")
            assert json.loads(value) == {
                "id": row["customer_id"],
                "prediction": label,
                "probabilities": None
                if probabilities is None
                else dict(zip(classes, probabilities[index], strict=True)),
                "model_version": "12",
                "served_by": "champion",
                "input": {"topic": "in", "partition": 2, "offset": index},
            }


def test_a_dead_letter_keeps_the_message_and_says_why_in_body_and_header():
    for value in (b'{"a": 1}', b"\xff\xfe not utf-8", None):
        key, body, headers = dead_letter(Rejected(incoming(value, offset=4), "a: Field required"))
        assert (
            json.loads(body)["reason"] == "a: Field required" and dict(headers)[REASON_HEADER] == b"a: Field required"
        )
        assert json.loads(body)["source"] == {"topic": "in", "partition": 0, "offset": 4}
        assert original(body) == (b"k", value)


def test_a_file_of_fixed_messages_with_a_bad_line_is_refused_whole_naming_the_line(cfg, tmp_path):
    path = tmp_path / "fixed.jsonl"
    path.write_text(json.dumps(ROW) + "\n\n" + json.dumps({**ROW, "colour": "red"}) + "\n")
    with pytest.raises(DataRejected) as refused:
        fixed_messages(path, cfg)
    assert refused.value.reasons == ["line 3: colour: Extra inputs are not permitted"]
    path.write_text(json.dumps(ROW) + "\n")
    assert fixed_messages(path, cfg) == [(b"C1", json.dumps(ROW).encode())]


def test_a_micro_batchs_ranges_are_measured_as_batch_validation_widens_them(cfg):
    profile = ReferenceProfile(numeric_ranges={"age": (20.0, 60.0)}, categories={"region": ["north", "south"]})
    # range_tolerance 0.5 in the demo config: 20 - 20 = 0 to 60 + 20 = 80 is in range
    columns = {
        "age": np.array([0.0, 80.0, 81.0, -1.0, np.nan]),
        "region": ["north", "east", "east", None, "south"],
        **{c: np.ones(5) for c in ["tenure_months", "monthly_charges", "support_calls"]},
        **{c: ["x"] * 5 for c in ["contract", "payment_method"]},
    }
    ranges = measure(columns, profile, cfg.dataset, cfg.validation)
    assert ranges.out_of_range == {"age": 2} and ranges.unseen == {"region": 2}
    assert ranges.over_limits(cfg.validation) == ["age", "region"]  # 40 % each, the limit is 1 %


def test_streamed_log_files_say_through_which_offset_each_partition_is_logged(tmp_path):
    rows = pa.table(
        {
            prediction_log.KAFKA_PARTITION: [0, 0, 3, 1],
            prediction_log.KAFKA_OFFSET: [7, 9, 120, 4],
            "prediction": [0, 1, 1, 0],
        }
    )
    paths = prediction_log.append_streamed(rows, tmp_path, "requests")
    prediction_log.append_streamed(rows.slice(0, 1), tmp_path, "other-topic")
    assert len(paths) == 1 and pd.read_parquet(paths[0]).equals(rows.to_pandas())
    assert prediction_log.logged_through(tmp_path, "requests") == {0: 9, 1: 4, 3: 120}
    assert prediction_log.logged_through(tmp_path, "other-topic") == {0: 7}
    assert prediction_log.log_files(tmp_path)[0].name.split("-")[1].endswith("p0o9p1o4p3o120")


def test_streamed_rows_of_many_partitions_go_to_one_file_per_twelve_partitions(tmp_path):
    rows = pa.table({prediction_log.KAFKA_PARTITION: list(range(30)), prediction_log.KAFKA_OFFSET: list(range(30))})
    paths = prediction_log.append_streamed(rows, tmp_path, "wide")
    assert [len(pd.read_parquet(p)) for p in paths] == [12, 12, 6]
    assert prediction_log.logged_through(tmp_path, "wide") == {p: p for p in range(30)}


def test_sasl_settings_take_the_password_from_the_environment_variable_the_config_names():
    streaming = StreamingConfig(
        bootstrap_servers="kafka:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="driftline",
        ssl_ca_location="/etc/kafka/ca.pem",
    )
    settings = connection_settings(streaming, {KAFKA_PASSWORD_ENV: "s3cret"})
    assert settings == {
        "bootstrap.servers": "kafka:9093",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "driftline",
        "sasl.password": "s3cret",
    }
    with pytest.raises(ConfigError, match=f"\\${KAFKA_PASSWORD_ENV} is not set"):
        connection_settings(streaming, {})
    with pytest.raises(ConfigError, match="streaming.bootstrap_servers is not set"):
        connection_settings(StreamingConfig(), {})
    from_environment = connection_settings(StreamingConfig(bootstrap_servers="a:9092"), {KAFKA_BOOTSTRAP_ENV: "b:9092"})
    assert from_environment["bootstrap.servers"] == "b:9092"


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"security_protocol": "SASL_SSL"}, "sasl_username is required with security_protocol SASL_SSL"),
        ({"output_topic": "driftline-requests"}, "must be three different topics"),
        ({"batch_size": 0}, "greater than or equal to 1"),
    ],
)
def test_a_streaming_config_that_cannot_work_is_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        StreamingConfig(bootstrap_servers="kafka:9092", **fields)


def test_a_micro_batch_scored_again_after_a_crash_logs_only_the_messages_past_the_logged_offsets(cfg):
    good = json.dumps(ROW).encode()
    checked = MessageChecker(cfg).split([incoming(good, offset) for offset in (5, 6, 7)])
    inputs = input_columns(checked.rows, cfg.dataset)
    predictions = Predictions(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), np.array([0, 1]))
    now = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    rows = unlogged_rows(cfg, inputs, checked, predictions, "4", 12.5, now, logged={0: 6, 3: 100}).to_pandas()
    assert rows[prediction_log.KAFKA_OFFSET].tolist() == [7] and rows["prediction"].tolist() == [1]
    assert rows[prediction_log.SOURCE_FINGERPRINT].tolist() == ["in/0/7"]
    assert rows[prediction_log.MODEL_VERSION].tolist() == ["4"]
    assert rows[prediction_log.SOURCE].tolist() == [f"kafka:{cfg.streaming.input_topic}"]
    assert rows[prediction_log.SCORED_AT].tolist() == [pd.Timestamp(now)]


def test_streamed_log_rows_hold_what_the_batch_log_holds_for_the_same_rows(cfg):
    """The frame-less writer: the columns, order and values of `prediction_log.records` on the request frame."""
    rows = [ROW, {**ROW, "customer_id": 7, "age": None, "region": None, "support_calls": 2}]
    checked = MessageChecker(cfg).split([incoming(json.dumps(row).encode(), offset) for offset, row in enumerate(rows)])
    predictions = Predictions(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]))
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    streamed = unlogged_rows(cfg, input_columns(checked.rows, cfg.dataset), checked, predictions, "4", 3.0, now, {})
    expected = prediction_log.records(
        request_frame(checked.rows, cfg.dataset),
        predictions,
        cfg,
        "4",
        "kafka:" + cfg.streaming.input_topic,
        np.array(["in/0/0", "in/0/1"], dtype=object),
        now,
        latency_ms=3.0,
    )
    got = streamed.to_pandas()
    assert list(got.columns) == [*expected.columns, KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET]
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
