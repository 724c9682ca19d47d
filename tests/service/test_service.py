"""The online service through HTTP on loopback: a real uvicorn server, models from MLflow on SQLite, real log files."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
import yaml
from testkit.paths import DEMO_CONFIG, WEEK

from driftline.config import DriftlineConfig, load_config
from driftline.data import prediction_log
from driftline.data.demo import CONCEPT_DRIFT, START, make_frame
from driftline.data.loading import load_batch
from driftline.modeling.pipeline import predict
from driftline.registry import ModelRef, Registry, registry_folders
from driftline.serving.app import create_app, request_model
from driftline.serving.batcher import PredictionBatcher
from driftline.serving.body_limit import body_limit
from driftline.serving.follower import serve
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "contract", "payment_method", "region"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One registry for the module: v1 (champion, trained on the reference) and v2 (challenger, after concept drift)."""
    root = tmp_path_factory.mktemp("service")
    reference = make_frame(3000, seed=1, days=56)
    drifted = make_frame(3000, seed=4, start=START + 9 * WEEK, scenario=CONCEPT_DRIFT, id_offset=30_000)
    cfg = load_config(write_config(root, {}))
    registry = Registry(cfg)
    refs = []
    for name, frame in (("reference", reference), ("drifted", drifted)):
        path = root / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        batch = load_batch(path, cfg.dataset)
        trained = train_model(batch.frame, cfg)
        source = DataSource(batch.fingerprint, batch.rows, batch.name, path.name)
        refs.append(registry.log_candidate(trained, collect_lineage(cfg, [source]), f"train on {name}"))
    registry.promote(refs[0])  # v1 champion; v2 stays challenger
    return root


def write_config(root: Path, serving: dict, monitoring: dict | None = None, gate: dict | None = None) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(root / "workspace")}
    data["model"]["params"] = {"max_iter": 40, "learning_rate": 0.1, "max_leaf_nodes": 15}
    data["serving"] = {"poll_seconds": 0.2, "log_flush_seconds": 0.5, **serving}
    if monitoring:
        data["monitoring"] = monitoring
    if gate:
        data["gate"] = {**data.get("gate", {}), **gate}
    path = root / f"serve-{abs(hash(repr((serving, gate))))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def service_config(workspace: Path, **serving) -> DriftlineConfig:
    return load_config(write_config(workspace, serving, monitoring={"settle_seconds": 0}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(app) -> Iterator[httpx.Client]:
    """The app on a real uvicorn server on loopback; stops it (and so flushes the prediction log) on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.config.port}", timeout=30) as client:
        wait_for(lambda: server.started, "the server to start")
        try:
            yield client
        finally:
            server.should_exit = True
            thread.join(timeout=30)


@contextmanager
def serving(cfg: DriftlineConfig, api_key: str | None = None, ready: bool = True) -> Iterator[httpx.Client]:
    app = create_app(cfg, Registry(cfg), api_key=api_key, describe=lambda ref: {"trigger": f"v{ref.version}"})
    with running(app) as client:
        if ready:
            wait_for(lambda: client.get("/ready").status_code == 200, "a champion to be loaded")
        yield client


def wait_for(condition, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"within {timeout} s: {what}")


def rows_of(frame: pd.DataFrame, with_ids: bool = True) -> list[dict]:
    columns = (["customer_id"] if with_ids else []) + FEATURES
    return frame[columns].astype(object).where(frame[columns].notna(), None).to_dict(orient="records")


def model_of(cfg: DriftlineConfig, version: str):
    return Registry(cfg).load_model(ModelRef(cfg.registry.model_name, version, run_id=""))  # by name and version


def restore_v1_as_champion(registry: Registry) -> None:
    """Back to the module's starting point after a test promoted v2: v1 champion, v2 challenger."""
    registry.promote(ModelRef(registry.name, "1", run_id=""))
    registry.client.set_registered_model_alias(registry.name, "challenger", "2")


def test_predictions_equal_the_registered_champion_on_the_same_rows(workspace):
    cfg = service_config(workspace)
    batch = make_frame(300, seed=7, start=START + 10 * WEEK, id_offset=70_000)
    batch.loc[::10, "contract"] = None  # missing values are answered as a batch file's would be
    batch.loc[::7, "age"] = None
    with serving(cfg) as client:
        answer = client.post("/predict", json={"rows": rows_of(batch)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == "1" and len(body["request_id"]) == 32
    expected = predict(model_of(cfg, "1"), batch, cfg.dataset)
    assert [p["id"] for p in body["predictions"]] == batch["customer_id"].tolist()
    assert [p["prediction"] for p in body["predictions"]] == expected.labels.tolist()
    probabilities = np.array([[p["probabilities"]["0"], p["probabilities"]["1"]] for p in body["predictions"]])
    np.testing.assert_allclose(probabilities, expected.proba, rtol=1e-12)
    assert {p["served_by"] for p in body["predictions"]} == {"champion"}


def test_concurrent_requests_predicted_together_each_get_their_own_rows(workspace):
    cfg = service_config(workspace)
    model = model_of(cfg, "1")
    served = serve(ModelRef(cfg.registry.model_name, "1", run_id=""), model, cfg.dataset)
    frames = [make_frame(n, seed=20 + n, start=START + 10 * WEEK, id_offset=1000 * n) for n in range(1, 41)]
    batcher = PredictionBatcher(max_rows=10_000)
    batcher.start()
    try:
        with ThreadPoolExecutor(16) as callers:
            answers = list(callers.map(lambda frame: batcher.predict(served, rows_of(frame)), frames))
    finally:
        batcher.stop()
    for frame, answer in zip(frames, answers, strict=True):
        expected = predict(model, frame, cfg.dataset)
        assert answer.labels.tolist() == expected.labels.tolist()
        np.testing.assert_allclose(answer.proba, expected.proba, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda row: row.pop("age"), "rows[0].age: Field required"),
        (lambda row: row.update(age="old"), "rows[0].age: Input should be a valid number"),
        (lambda row: row.update(favourite_colour="red"), "rows[0].favourite_colour: Extra inputs are not permitted"),
        (lambda row: row.update(contract=["one-year"]), "rows[0].contract"),
        (lambda row: row.update(region="r" * 65), "String should have at most 64 characters"),
    ],
)
def test_a_bad_request_gets_422_naming_the_field(workspace, change, field):
    cfg = service_config(workspace)
    row = rows_of(make_frame(1, seed=8))[0]
    change(row)
    with serving(cfg) as client:
        answer = client.post("/predict", json={"rows": [row]})
        empty = client.post("/predict", json={"rows": []})
        metrics = client.get("/metrics").text
    assert answer.status_code == 422 and field in answer.json()["message"], answer.text
    assert empty.status_code == 422 and empty.json()["message"].startswith("rows: List should have at least 1 item")
    assert 'driftline_requests_total{outcome="invalid"} 2.0' in metrics


def test_requests_may_carry_the_gates_watched_columns_which_are_logged_and_never_predicted_on(workspace):
    """A fairness attribute that is not a feature: requests may send it, so live rows are sliced like batch rows."""
    cfg = load_config(write_config(workspace, {}, {"settle_seconds": 0}, gate={"fairness": {"attribute": "segment"}}))
    batch = make_frame(40, seed=12, id_offset=90_000)
    segments = ["a", 3, None, "b"] * 10
    with_segment = [{**row, "segment": segment} for row, segment in zip(rows_of(batch), segments, strict=True)]
    before = set(prediction_log.log_files(registry_folders(cfg).prediction_log))
    with serving(cfg) as client:
        answer = client.post("/predict", json={"rows": with_segment}).json()
        wait_for(lambda: set(prediction_log.log_files(registry_folders(cfg).prediction_log)) - before, "the log")
        without = client.post("/predict", json={"rows": rows_of(batch)}).json()
        unknown = client.post("/predict", json={"rows": [{**with_segment[0], "favourite_colour": "red"}]})
    assert answer["predictions"] == without["predictions"]  # the model never saw the column
    assert (
        unknown.status_code == 422 and "favourite_colour: Extra inputs are not permitted" in unknown.json()["message"]
    )
    first, second = sorted(set(prediction_log.log_files(registry_folders(cfg).prediction_log)) - before)
    logged = pd.read_parquet(first)
    assert logged["customer_id"].tolist() == batch["customer_id"].tolist()
    assert logged["segment"].tolist()[:4] == ["a", "3", None, "b"]  # as text, like a category read from a file
    assert pd.read_parquet(second)["segment"].isna().all()


def test_a_request_of_max_rows_rows_with_the_longest_valid_values_is_answered(workspace):
    """The default body limit is the largest valid request: max_rows rows, every text at serving.max_text_chars
    characters written as JSON escapes (surrogate pairs), numbers at their longest, indented as json.dumps does."""
    cfg = load_config(write_config(workspace, {"max_rows": 40}, gate={"fairness": {"attribute": "segment"}}))
    longest = "\N{GRINNING FACE}" * cfg.serving.max_text_chars
    rows = [
        {**row, "customer_id": longest, "segment": longest}
        | dict.fromkeys(cfg.dataset.categorical_features, longest)
        | dict.fromkeys(cfg.dataset.numeric_features, -2.2250738585072014e-308)
        for row in rows_of(make_frame(cfg.serving.max_rows, seed=15))
    ]
    body = json.dumps({"rows": rows}, indent=2).encode()
    limit = body_limit(cfg, request_model(cfg))
    assert 0.95 * limit < len(body) <= limit  # the allowance is what a valid row can take, not far more
    with serving(cfg) as client:
        answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == cfg.serving.max_rows


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_parsed_and_the_service_keeps_answering(workspace):
    cfg = service_config(workspace, max_body_bytes=50_000)
    not_json = b"x" * 200_000  # parsed, it would be a 422: a 413 says it never was

    def chunked():
        for start in range(0, len(not_json), 8192):
            yield not_json[start : start + 8192]

    rows = {"rows": rows_of(make_frame(5, seed=16))}
    with serving(cfg) as client:
        declared = client.post("/predict", content=not_json, headers={"content-type": "application/json"})
        streamed = client.post("/predict", content=chunked(), headers={"content-type": "application/json"})
        after = client.post("/predict", json=rows)
        metrics = client.get("/metrics").text
    assert "content-length" in declared.request.headers and "chunked" in streamed.request.headers["transfer-encoding"]
    for refused in (declared, streamed):
        assert refused.status_code == 413
        assert refused.json() == {
            "detail": "request body over the limit of 50000 bytes (serving.max_body_bytes; by default the size of "
            "serving.max_rows rows at their largest valid size): send fewer rows per request"
        }
    assert after.status_code == 200 and len(after.json()["predictions"]) == 5
    assert 'driftline_requests_total{outcome="too_large"} 2.0' in metrics


def test_ready_only_once_a_champion_is_loaded(tmp_path):
    cfg = load_config(write_config(tmp_path, {}))  # an empty registry
    with serving(cfg, ready=False) as client:
        assert client.get("/health").json() == {"status": "ok"}
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503 and "no champion of churn-demo" in not_ready.json()["reason"]
        answer = client.post("/predict", json={"rows": rows_of(make_frame(1, seed=9))})
        assert answer.status_code == 503 and "see GET /ready" in answer.json()["detail"]


def test_a_promotion_during_a_stream_of_requests_switches_version_with_no_failed_request(workspace):
    cfg = service_config(workspace)
    registry = Registry(cfg)
    rows = rows_of(make_frame(20, seed=10))
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def stream(client: httpx.Client) -> None:
        while not stop.is_set():
            answer = client.post("/predict", json={"rows": rows})
            seen.append((answer.status_code, answer.json().get("model_version")))

    try:
        with serving(cfg) as client:
            sender = threading.Thread(target=stream, args=(client,))
            sender.start()
            wait_for(lambda: len(seen) >= 20, "requests answered by v1")
            registry.promote(registry.alias("challenger"))
            wait_for(lambda: seen and seen[-1][1] == "2", "the service to answer with v2")
            count = len(seen)
            wait_for(lambda: len(seen) >= count + 20, "more requests answered by v2")
            stop.set()
            sender.join()
    finally:
        restore_v1_as_champion(registry)
    assert {status for status, _ in seen} == {200}
    versions = [version for _, version in seen]
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}  # one switch, never back


def test_shadow_logs_both_answers_and_returns_only_the_champions(workspace):
    cfg = service_config(workspace, shadow=True)
    batch = make_frame(200, seed=11, id_offset=80_000)
    before = set(prediction_log.log_files(registry_folders(cfg).prediction_log))
    with serving(cfg) as client:
        wait_for(lambda: client.get("/model").json()["challenger"] is not None, "the challenger to load")
        answer = client.post("/predict", json={"rows": rows_of(batch)}).json()
    assert answer["model_version"] == "1"
    assert {p["served_by"] for p in answer["predictions"]} == {"champion"}
    [written] = set(prediction_log.log_files(registry_folders(cfg).prediction_log)) - before
    logged = pd.read_parquet(written)
    assert logged["customer_id"].tolist() == batch["customer_id"].tolist()
    assert set(logged[prediction_log.MODEL_VERSION]) == {"1"}
    assert set(logged[prediction_log.SHADOW_MODEL_VERSION]) == {"2"}
    challenger = predict(model_of(cfg, "2"), batch, cfg.dataset)
    assert logged[prediction_log.SHADOW_PREDICTION].tolist() == challenger.labels.tolist()
    assert [p["prediction"] for p in answer["predictions"]] == logged[prediction_log.PREDICTION].tolist()


def test_canary_rows_go_to_the_challenger_at_the_configured_share_and_stay_there(workspace):
    cfg = service_config(workspace, canary_share=0.25)
    batch = make_frame(4000, seed=12, id_offset=90_000)
    with serving(cfg) as client:
        wait_for(lambda: client.get("/model").json()["challenger"] is not None, "the challenger to load")
        chunks = [rows_of(batch.iloc[start : start + 1000]) for start in range(0, 4000, 1000)]
        first = [p for rows in chunks for p in client.post("/predict", json={"rows": rows}).json()["predictions"]]
        again = client.post("/predict", json={"rows": rows_of(batch.iloc[:1000])}).json()["predictions"]
        missing_id = client.post("/predict", json={"rows": rows_of(batch.iloc[:1], with_ids=False)})
    arms = [p["served_by"] for p in first]
    share = arms.count("challenger") / len(arms)
    assert abs(share - 0.25) < 4 * np.sqrt(0.25 * 0.75 / len(arms)), share  # 4 standard errors
    assert {p["model_version"] for p in first if p["served_by"] == "challenger"} == {"2"}
    assert {p["model_version"] for p in first if p["served_by"] == "champion"} == {"1"}
    assert [p["served_by"] for p in again] == arms[:1000]  # the same id, the same model
    assert missing_id.status_code == 422 and "rows[0].customer_id: Field required" in missing_id.json()["message"]


def test_an_api_key_is_required_when_one_is_set(workspace):
    cfg = service_config(workspace)
    rows = {"rows": rows_of(make_frame(2, seed=13))}
    with serving(cfg, api_key="s3cret") as client:
        assert client.post("/predict", json=rows).status_code == 401
        assert client.post("/predict", json=rows, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/predict", json=rows, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/health").status_code == 200  # probes need no key


def test_metrics_and_model_describe_what_is_served(workspace):
    cfg = service_config(workspace)
    with serving(cfg) as client:
        for _ in range(3):
            client.post("/predict", json={"rows": rows_of(make_frame(5, seed=14))})
        metrics = client.get("/metrics").text
        described = client.get("/model").json()
    assert 'driftline_requests_total{outcome="ok"} 3.0' in metrics
    assert 'driftline_rows_total{served_by="champion"} 15.0' in metrics
    assert "driftline_request_latency_seconds_bucket" in metrics
    assert 'driftline_model_version{alias="champion"} 1.0' in metrics
    assert described["champion"]["version"] == "1" and described["champion"]["trigger"] == "v1"
    assert described["challenger"] is None  # neither shadow nor canary: only the champion is loaded


def test_the_prediction_log_of_the_service_feeds_a_monitoring_run(workspace, prefect_api_url):
    from driftline.flows.drift_monitoring import drift_monitoring
    from driftline.flows.params import MonitorParams

    cfg = service_config(workspace)
    # earlier tests' requests (one batch sent over and over) are not this test's window
    shutil.rmtree(registry_folders(cfg).prediction_log, ignore_errors=True)
    batch = make_frame(600, seed=15, start=START + 10 * WEEK, id_offset=60_000)
    with serving(cfg) as client:
        for chunk in range(3):
            client.post("/predict", json={"rows": rows_of(batch.iloc[chunk * 200 : (chunk + 1) * 200])})
    outcome = drift_monitoring(MonitorParams(config=str(cfg.source)))
    assert outcome.batch.startswith("prediction log") and outcome.rows == 600
    assert not outcome.drift_detected  # the same world the champion was trained on


def test_a_promotion_event_swaps_the_model_before_the_next_poll(workspace, prefect_api_url):
    from functools import partial

    from driftline.tasks.events import MODEL_PROMOTED, emit_model_event, follow_model_moves

    cfg = service_config(workspace, poll_seconds=600)  # polling alone would not notice within the test
    registry = Registry(cfg)
    app = create_app(cfg, registry, model_events=partial(follow_model_moves, cfg))
    with running(app) as client:
        wait_for(lambda: client.get("/ready").status_code == 200, "v1 to load")
        registry.promote(registry.alias("challenger"))
        try:

            def announced_and_swapped() -> bool:  # announced again until the service's subscription is open
                emit_model_event(MODEL_PROMOTED, cfg, {"version": "2"})
                time.sleep(0.5)
                return client.get("/ready").json()["champion"] == "2"

            wait_for(announced_and_swapped, "the event to wake the service")
        finally:
            restore_v1_as_champion(registry)
