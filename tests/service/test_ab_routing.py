"""A/B tests routed by unit, through HTTP on loopback and batch files: real uvicorn servers, MLflow on SQLite, the
test's record in the registry, real prediction-log files."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
import yaml
from testkit.paths import DEMO_CONFIG
from testkit.waiting import wait_for

from driftline.config import DriftlineConfig, load_config
from driftline.data import prediction_log
from driftline.data.demo import CONCEPT_DRIFT, START, make_frame
from driftline.data.loading import load_batch
from driftline.evaluation.gate import GateDecision
from driftline.registry import ModelRef, Registry, registry_folders
from driftline.registry.ab_tests import AbTest
from driftline.serving.app import create_app
from driftline.steps import scoring
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "contract", "payment_method", "region"]
WEEK = pd.Timedelta(days=7)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One registry: v1 champion (trained on the reference), v2 (after concept drift) passed its gate, not promoted."""
    root = tmp_path_factory.mktemp("ab-routing")
    cfg = load_config(write_config(root))
    registry = Registry(cfg)
    refs = []
    for name, frame in (
        ("reference", make_frame(1500, seed=1, days=56)),
        ("drifted", make_frame(1500, seed=4, start=START + 9 * WEEK, scenario=CONCEPT_DRIFT, id_offset=30_000)),
    ):
        path = root / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        batch = load_batch(path, cfg.dataset)
        trained = train_model(batch.frame, cfg)
        source = DataSource(batch.fingerprint, batch.rows, batch.name, path.name)
        refs.append(registry.log_candidate(trained, collect_lineage(cfg, [source]), f"train on {name}"))
    registry.promote(refs[0])
    passed = GateDecision(True, "roc_auc", ["better than v1 on the holdout"], {"roc_auc": 0.8}, None, "1")
    registry.record_gate(refs[1], passed)  # may enter an A/B test
    return root


def write_config(root: Path, poll_seconds: float = 0.2) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(root / "workspace")}
    data["model"]["params"] = {"max_iter": 20, "learning_rate": 0.1, "max_leaf_nodes": 15}
    data["serving"] = {"poll_seconds": poll_seconds, "log_flush_seconds": 0.5}
    path = root / f"ab-{poll_seconds:g}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def config(workspace: Path, poll_seconds: float = 0.2) -> DriftlineConfig:
    return load_config(write_config(workspace, poll_seconds))


@contextmanager
def ab_test(registry: Registry, share: float) -> Iterator[AbTest]:
    """v2 against the champion v1 on `share` of the customers; afterwards no test runs and v1 is champion again."""
    test = registry.ab_tests.start("2", share, ["revenue"], [], 14, "customer_id", "try v2 on revenue")
    try:
        yield test
    finally:
        if registry.running_ab_test() is not None:
            registry.ab_tests.stop(False, "the test's test is over")
        if registry.champion().version != "1":
            registry.promote(ModelRef(registry.name, "1", run_id=""))


@contextmanager
def running(app) -> Iterator[httpx.Client]:
    """The app on a real uvicorn server on loopback (port 0: the system picks a free one); stopped on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the server to start", every=0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        try:
            wait_for(lambda: client.get("/ready").status_code == 200, 30, "a champion to be loaded", every=0.05)
            yield client
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def predict(client: httpx.Client, frame: pd.DataFrame) -> dict:
    columns = ["customer_id", *FEATURES]
    rows = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict(orient="records")
    answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    return answer.json()


def answers(client: httpx.Client, frame: pd.DataFrame, rows: int = 500) -> list[dict]:
    return [
        p
        for start in range(0, len(frame), rows)
        for p in predict(client, frame.iloc[start : start + rows])["predictions"]
    ]


def new_log_rows(folder: Path, before: set[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(path) for path in sorted(set(prediction_log.log_files(folder)) - before)])


def test_half_the_units_meet_arm_b_and_each_meets_the_same_arm_in_two_services_and_a_batch_file(workspace):
    cfg = config(workspace)
    registry, log_folder = Registry(cfg), registry_folders(cfg).prediction_log
    customers = make_frame(1000, seed=21, start=START + 10 * WEEK, id_offset=200_000)
    # The same customers on other days with other features: their arm follows the customer, not the row.
    later = make_frame(1000, seed=22, start=START + 11 * WEEK, id_offset=200_000)
    before = set(prediction_log.log_files(log_folder))
    with ab_test(registry, share=0.5) as test:
        with running(create_app(cfg, registry)) as first, running(create_app(cfg, registry)) as second:
            answered = answers(first, customers)
            again = answers(second, later)
            one = predict(first, customers.iloc[:3])
        batch = Path(cfg.folders.root) / "customers-later.csv"
        later.to_csv(batch, index=False)
        _, scored = scoring.validate_and_score_file(
            batch, registry.load_champion(), cfg, None, scoring.load_ab_arm(cfg)
        )
    arms = [p["arm"] for p in answered]
    assert abs(arms.count("B") / len(arms) - 0.5) < 4 * np.sqrt(0.25 / len(arms)), arms.count("B")
    assert {(p["arm"], p["served_by"], p["model_version"]) for p in answered} == {
        ("A", "champion", "1"),
        ("B", "challenger", "2"),
    }
    assert one["ab_test"] == test.id and [p["arm"] for p in one["predictions"]] == arms[:3]
    assert [p["arm"] for p in again] == arms  # another service, other rows of the same customers
    by_customer = dict(zip(customers["customer_id"], arms, strict=True))
    output = pd.read_parquet(scored.output)
    assert output["arm"].tolist() == [by_customer[c] for c in output["customer_id"]]  # a batch file, the same arms
    assert (output["model_version"] == output["arm"].map({"A": "1", "B": "2"})).all()
    logged = new_log_rows(log_folder, before)
    assert len(logged) == 2 * 1000 + 3 + 1000  # the services' rows and the batch file's
    expected = logged["customer_id"].map(by_customer).map({"A": "champion", "B": "challenger"})
    assert (logged[prediction_log.SERVED_BY] == expected).all()
    assert (logged[prediction_log.MODEL_VERSION] == expected.map({"champion": "1", "challenger": "2"})).all()


@pytest.mark.slow  # waits for two polls: ~18 s
def test_a_test_started_while_serving_is_followed_without_restart_and_a_stop_gives_one_arm_all_traffic(workspace):
    cfg = config(workspace)
    registry = Registry(cfg)
    customers = make_frame(400, seed=31, start=START + 10 * WEEK, id_offset=300_000)
    with running(create_app(cfg, registry)) as client:
        alone = predict(client, customers)
        with ab_test(registry, share=0.5) as kept_test:
            wait_for(
                lambda: predict(client, customers.iloc[:1])["ab_test"] == kept_test.id,
                30,
                "the service to follow",
                every=0.05,
            )
            split = predict(client, customers)
            described = client.get("/model").json()["routing"]["ab_test"]
            registry.ab_tests.stop(False, "kept: no difference worth the change")
            wait_for(
                lambda: predict(client, customers.iloc[:1])["ab_test"] is None, 30, "the service to drop it", every=0.05
            )
            kept = predict(client, customers)
        with ab_test(registry, share=0.5) as promoted_test:
            wait_for(
                lambda: predict(client, customers.iloc[:1])["ab_test"] == promoted_test.id,
                30,
                "it to be followed",
                every=0.05,
            )
            registry.ab_tests.stop(True, "B won on revenue")
            promotion_served = {"ab_test": None, "model_version": "2"}
            wait_for(
                lambda: predict(client, customers.iloc[:1]).items() >= promotion_served.items(),
                30,
                "v2 alone",
                every=0.05,
            )
            promoted = predict(client, customers)
    assert described == {
        "test_id": kept_test.id,
        "version": "2",
        "champion_version": "1",
        "share": 0.5,
        "unit_column": "customer_id",
    }
    served = {p["arm"]: p["model_version"] for p in split["predictions"]}
    assert served == {"A": "1", "B": "2"} and split["model_version"] is None
    for answer, version in ((alone, "1"), (kept, "1"), (promoted, "2")):
        assert answer["model_version"] == version and answer["ab_test"] is None
        assert {(p["arm"], p["served_by"], p["model_version"]) for p in answer["predictions"]} == {
            (None, "champion", version)
        }


def test_a_test_announced_by_its_event_is_followed_before_the_next_poll(workspace, prefect_api_url):
    from driftline.tasks.events import follow_model_moves
    from driftline.tasks.registry import announce_ab_test

    cfg = config(workspace, poll_seconds=600)  # polling alone would not notice within the test
    registry = Registry(cfg)
    customers = make_frame(50, seed=41, start=START + 10 * WEEK, id_offset=400_000)
    app = create_app(cfg, registry, model_events=partial(follow_model_moves, cfg))
    with running(app) as client, ab_test(registry, share=0.5) as test:

        def announced_and_followed(test: AbTest, expected: str | None) -> bool:
            announce_ab_test(cfg, test)  # again until the service's subscription is open
            time.sleep(0.5)
            return predict(client, customers)["ab_test"] == expected

        wait_for(partial(announced_and_followed, test, test.id), 30, "the start event to wake the service", every=0.05)
        ended, _ = registry.ab_tests.stop(False, "kept")
        wait_for(partial(announced_and_followed, ended, None), 30, "the stop event to wake the service", every=0.05)
