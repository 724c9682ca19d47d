"""The fleet service through HTTP on loopback: every model of a folder of configs answered by one uvicorn server,
models from one MLflow store on SQLite, loaded on first request, unloaded past the bound."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn
import yaml
from testkit.paths import DEMO_CONFIG
from testkit.waiting import wait_for

from driftline.config import DriftlineConfig, load_fleet
from driftline.data import prediction_log
from driftline.data.demo import START, make_frame
from driftline.data.loading import load_batch
from driftline.modeling.pipeline import predict
from driftline.registry import ModelRef, Registry, registry_folders
from driftline.serving.fleet_app import FleetService
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

MODELS = ("alpha", "beta", "gamma")  # beta has two versions: v2 its champion, v1 its challenger after the test
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "contract", "payment_method", "region"]


def write_fleet(root: Path) -> Path:
    """A folder of three model configs over a fleet.yaml that gives them one workspace (and so one MLflow store)."""
    folder = root / "fleet"
    folder.mkdir()
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    shared = {
        "storage": {"workspace": str(root / "workspace")},
        "serving": {"poll_seconds": 0.2, "log_flush_seconds": 0.5, "port": 18_931},
        "monitoring": {"settle_seconds": 0},
    }
    (folder / "fleet.yaml").write_text(yaml.safe_dump(shared))
    for seed, name in enumerate(MODELS, start=1):
        data = {key: value for key, value in demo.items() if key != "storage"}  # the fleet's workspace, its store
        data |= {"name": name, "registry": {"model_name": name}}
        data["model"] = {**demo["model"], "params": {"max_iter": 15 + 10 * seed, "max_leaf_nodes": 7}}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory) -> Path:
    """Three models in one store, each trained on its own rows (so their answers differ); beta's champion is v2."""
    root = tmp_path_factory.mktemp("fleet-service")
    folder = write_fleet(root)
    fleet = load_fleet(folder)
    assert {cfg.folders.root for cfg in fleet.configs} == {root / "workspace"}
    for seed, cfg in enumerate(fleet.configs, start=1):
        registry = Registry(cfg)
        for version in range(2 if cfg.registry.model_name == "beta" else 1):
            path = root / f"{cfg.registry.model_name}-{version}.parquet"
            make_frame(800, seed=10 * seed + version, days=28).to_parquet(path, index=False)
            batch = load_batch(path, cfg.dataset)
            source = DataSource(batch.fingerprint, batch.rows, batch.name, path.name)
            ref = registry.log_candidate(train_model(batch.frame, cfg), collect_lineage(cfg, [source]), "fleet test")
        registry.promote(ref)
    return folder


def with_settings(fleet_dir: Path, name: str, serving: dict, where: str = "fleet.yaml") -> Path:
    """A copy of the fleet folder whose `where` file has these serving settings (the store stays shared)."""
    folder = fleet_dir.parent / name
    if not folder.exists():
        folder.mkdir()
        for file in fleet_dir.glob("*.yaml"):
            data = yaml.safe_load(file.read_text())
            if file.name == where:
                data["serving"] = {**data.get("serving", {}), **serving}
            (folder / file.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(app) -> Iterator[httpx.Client]:
    """The app on a real uvicorn server on loopback; stops it (and so every loaded model) on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.config.port}", timeout=60) as client:
        wait_for(lambda: server.started, 30, "the server to start", every=0.05)
        try:
            yield client
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def rows_of(frame: pd.DataFrame) -> list[dict]:
    columns = ["customer_id", *FEATURES]
    return frame[columns].astype(object).where(frame[columns].notna(), None).to_dict(orient="records")


def model_of(cfg: DriftlineConfig, version: str):
    return Registry(cfg).load_model(ModelRef(cfg.registry.model_name, version, run_id=""))


@contextmanager
def fleet_service(folder: Path, api_key: str | None = None) -> Iterator[tuple[httpx.Client, FleetService]]:
    from driftline.cli.operations import model_app

    service = FleetService(load_fleet(folder), model_app, api_key=api_key)
    with running(service) as client:
        yield client, service


def answers(client: httpx.Client, name: str, rows: list[dict], **headers) -> dict:
    answer = client.post(f"/models/{name}/predict", json={"rows": rows}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def champion_answers(folder: Path, name: str, version: str, frame: pd.DataFrame) -> list:
    cfg = load_fleet(folder).model(name)
    return predict(model_of(cfg, version), frame, cfg.dataset).labels.tolist()


@pytest.mark.slow  # with `fleet_dir` (4 versions trained and registered): ~27 s for these 5 on 2 idle cores
def test_each_model_answers_on_its_route_with_its_own_champion_and_models_lists_them(fleet_dir):
    batch = make_frame(300, seed=7, start=START, id_offset=70_000)
    with fleet_service(fleet_dir) as (client, _):
        before = client.get("/models").json()
        answered = {name: answers(client, name, rows_of(batch)) for name in MODELS}
        after = client.get("/models").json()
        ready = client.get("/models/gamma/ready").json()
    for name, version in (("alpha", "1"), ("beta", "2"), ("gamma", "1")):
        assert answered[name]["model_version"] == version
        assert [p["prediction"] for p in answered[name]["predictions"]] == champion_answers(
            fleet_dir, name, version, batch
        )
    probabilities = {name: [p["probabilities"]["1"] for p in answered[name]["predictions"]] for name in MODELS}
    assert probabilities["alpha"] != probabilities["beta"] != probabilities["gamma"]  # three models, not one
    assert [(m["name"], m["champion"], m["loaded"]) for m in before["models"]] == [
        ("alpha", "1", False),
        ("beta", "2", False),
        ("gamma", "1", False),
    ]
    assert [(m["name"], m["loaded"], m["loads"]) for m in after["models"]] == [(name, True, 1) for name in MODELS]
    assert ready == {"ready": True, "champion": "1", "loaded": True}


def test_an_unknown_model_is_a_404_naming_the_known_ones_and_a_broken_config_is_reported_the_others_served(
    tmp_path,
):
    folder = write_fleet(tmp_path)  # nothing trained: no model has a champion yet
    (folder / "delta.yaml").write_text("registry:\n  model_name: delta\nmodel:\n  kind: [not, a, kind\n")
    row = rows_of(make_frame(1, seed=8))
    with fleet_service(folder) as (client, service):
        unknown = client.post("/models/omega/predict", json={"rows": row})
        unknown_ready = client.get("/models/omega/ready")
        unknown_route = client.post("/models/alpha/train", json={})
        ready = client.get("/models/beta/ready")
        listed = client.get("/models").json()
        loaded = dict(service.cache.loaded)
    for answer in (unknown, unknown_ready):
        assert answer.status_code == 404
        assert answer.json()["detail"].endswith("its models: alpha, beta, gamma"), answer.text
    assert unknown_route.status_code == 404 and "no route /train" in unknown_route.json()["detail"]
    assert ready.status_code == 503  # a probe reads the registry, loads nothing
    assert ready.json() == {"ready": False, "loaded": False, "reason": "no champion of beta in the registry yet"}
    assert loaded == {}
    assert [(m["name"], m["champion"], m["loaded"]) for m in listed["models"]] == [
        (name, None, False) for name in MODELS
    ]
    [broken] = listed["broken"]
    assert broken["config"] == str(folder / "delta.yaml")
    assert broken["problem"].startswith(f"{folder / 'delta.yaml'}") and "line 4" in broken["problem"], broken


@pytest.mark.slow
@pytest.mark.parametrize("bound", [{"max_loaded_models": 2}, {"max_loaded_mb": 1}], ids=["models", "memory"])
def test_over_its_bound_the_service_unloads_the_least_recently_used_and_answers_stay_right_after_reload(
    fleet_dir, bound
):
    folder = with_settings(fleet_dir, f"bounded-{next(iter(bound))}", bound)
    alpha_log = registry_folders(load_fleet(folder).model("alpha")).prediction_log
    logged_before = set(prediction_log.log_files(alpha_log))
    batch = make_frame(50, seed=9, start=START, id_offset=90_000)
    walk = ["alpha", "beta", "gamma", "alpha", "gamma", "beta", "alpha"]
    with fleet_service(folder) as (client, service):
        answered = [(name, answers(client, name, rows_of(batch))) for name in walk]
        listed = client.get("/models").json()
        loaded = list(service.cache.loaded)
    expected = {name: champion_answers(folder, name, "2" if name == "beta" else "1", batch) for name in MODELS}
    for name, answer in answered:
        assert [p["prediction"] for p in answer["predictions"]] == expected[name], name
    if "max_loaded_models" in bound:
        assert loaded == ["beta", "alpha"]  # the two used last
        assert {m["name"]: m["loads"] for m in listed["models"]} == {"alpha": 3, "beta": 2, "gamma": 1}
    else:  # a budget below any process's size: only the model answering stays loaded
        assert loaded == ["alpha"]
        assert {m["name"]: m["loads"] for m in listed["models"]} == {"alpha": 3, "beta": 2, "gamma": 2}
    # nothing lost: each of alpha's three answered requests is in its prediction log, written when it was unloaded
    written = set(prediction_log.log_files(alpha_log)) - logged_before
    logged = pd.concat([pd.read_parquet(path) for path in written])
    assert len(logged) == 3 * len(batch)
    assert logged[prediction_log.SOURCE_FINGERPRINT].nunique() == 3  # the request ids


@pytest.mark.slow
def test_a_promotion_of_one_model_swaps_only_that_model(fleet_dir):
    rows = rows_of(make_frame(20, seed=10))
    cfg = load_fleet(fleet_dir).model("beta")
    registry = Registry(cfg)
    with fleet_service(fleet_dir) as (client, service):
        assert answers(client, "alpha", rows)["model_version"] == "1"
        assert answers(client, "beta", rows)["model_version"] == "2"
        alpha_app = service.cache.loaded["alpha"].app
        registry.promote(ModelRef("beta", "1", run_id=""))
        try:
            wait_for(lambda: answers(client, "beta", rows)["model_version"] == "1", 30, "beta to serve v1", every=0.1)
            alpha_after = answers(client, "alpha", rows)["model_version"]
            metrics = client.get("/metrics").text
        finally:
            registry.promote(ModelRef("beta", "2", run_id=""))
        assert service.cache.loaded["alpha"].app is alpha_app  # never reloaded
        alpha_swaps = alpha_app.state.follower.swaps
    assert alpha_after == "1" and alpha_swaps == 1  # its first load only
    assert 'driftline_model_version{alias="champion",model="beta"} 1.0' in metrics
    assert 'driftline_model_version{alias="champion",model="alpha"} 1.0' in metrics
    assert 'driftline_model_swaps{model="beta"} 2.0' in metrics
    assert 'driftline_requests_total{model="alpha",outcome="ok"}' in metrics


@pytest.mark.slow
def test_each_model_has_its_own_api_key_and_the_fleet_routes_the_fleets(fleet_dir, monkeypatch):
    folder = with_settings(fleet_dir, "keyed", {"api_key_env": "ALPHA_KEY"}, where="alpha.yaml")
    monkeypatch.setenv("ALPHA_KEY", "alpha-secret")
    rows = {"rows": rows_of(make_frame(2, seed=13))}
    with fleet_service(folder, api_key="fleet-secret") as (client, _):
        alpha_without = client.post("/models/alpha/predict", json=rows)
        alpha_fleet_key = client.post("/models/alpha/predict", json=rows, headers={"X-API-Key": "fleet-secret"})
        alpha_with = client.post("/models/alpha/predict", json=rows, headers={"X-API-Key": "alpha-secret"})
        beta_without = client.post("/models/beta/predict", json=rows)
        models_without = client.get("/models")
        models_with = client.get("/models", headers={"Authorization": "Bearer fleet-secret"})
        ready = client.get("/models/alpha/ready")  # probes need no key
    assert alpha_without.status_code == 401 and alpha_fleet_key.status_code == 401
    assert alpha_with.status_code == 200 and beta_without.status_code == 200
    assert models_without.status_code == 401 and models_with.status_code == 200
    assert ready.status_code == 200
