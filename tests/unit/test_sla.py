"""SLAs evaluated where the data is: a real service's /ready and /metrics over HTTP (or nothing listening), the
prediction log and label store as the scoring and label code write them; compliance over the window, breaches."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.config import DriftlineConfig, load_config, load_fleet
from driftline.data import prediction_log
from driftline.fleet import service_probe, sla
from driftline.fleet.service_probe import Probe, Service
from driftline.modeling.pipeline import Predictions
from driftline.monitoring import label_store
from driftline.serving.app import ServiceMetrics


class FakeService:
    """A real HTTP server answering /ready and /metrics the way the online service does (its own ServiceMetrics
    writes the exposition); `ready` switches what /ready says."""

    def __init__(self) -> None:
        self.ready = True
        self.metrics = ServiceMetrics()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("/ready"):
                    body = {"ready": True, "champion": "3"} if service.ready else {"ready": False, "reason": "no model"}
                    self._send(200 if service.ready else 503, json.dumps(body).encode(), "application/json")
                elif self.path == "/metrics":
                    self._send(200, service.metrics.exposition(), "text/plain")
                else:
                    self._send(404, b"{}", "application/json")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[FakeService]:
    running = FakeService()
    yield running
    running.stop()


def sla_config(config_factory, port: int, **bounds) -> DriftlineConfig:
    return load_config(config_factory(serving={"port": port}, sla=bounds, labels={"enabled": True, "min_rows": 20}))


def check(cfg: DriftlineConfig, folders=None) -> sla.Checked:
    """One check as the flow runs it for a config served alone: probe, then evaluate and record."""
    bounds = cfg.sla.bounds
    probe = None
    if {"availability", "p95_latency_ms"} & set(bounds):
        service = service_probe.service_of(cfg, None)
        with service_probe.client() as http:
            probe = service_probe.probe(http, service, "availability" in bounds, "p95_latency_ms" in bounds)
    return sla.evaluate(cfg, probe, folders)


def free_port() -> int:
    import socket

    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


# --- availability, probed from outside --------------------------------------------------------------------------------
def test_availability_is_the_share_of_probes_answered_ready_and_a_refused_connection_is_a_failed_probe(
    config_factory, service
):
    cfg = sla_config(config_factory, service.port, availability=0.9)
    first, second = check(cfg), check(cfg)
    service.ready = False
    not_ready = check(cfg)
    service.stop()
    refused = check(cfg)  # nothing listens: a failed probe, not an error

    assert [c.evaluations[0].value for c in (first, second, not_ready, refused)] == [1.0, 1.0, 2 / 3, 0.5]
    assert first.probe == "ready, champion v3"
    assert not_ready.probe.startswith("503 from") and "no model" in not_ready.probe
    assert refused.probe.startswith(f"no answer from http://127.0.0.1:{service.port}/ready: ConnectError")
    # the breach is announced once, when it starts; the next evaluation outside is not a new breach
    assert [b.sla for b in not_ready.breaches] == ["availability"] and refused.breaches == []
    assert sla.compliance(cfg) == {"availability": 0.5}  # 2 of 4 evaluations within 0.9
    assert sla.breaching(cfg) == [refused.evaluations[0].line()]
    assert sla.breaching(cfg)[0].startswith("availability 0.5 breaches 0.9 (2 of 4 probes ready over 30 d")


def test_a_fleet_model_is_probed_at_the_fleet_services_path_with_the_fleets_key(tmp_path, monkeypatch):
    from testkit.configs import write_config

    folder = tmp_path / "fleet"
    folder.mkdir()
    (folder / "fleet.yaml").write_text("serving: {host: 0.0.0.0, port: 8123, api_key_env: FLEET_KEY}\n")
    write_config(folder, "alpha.yaml", registry={"model_name": "alpha"}, sla={"availability": 0.99})
    monkeypatch.setenv("FLEET_KEY", "fleet-secret")
    fleet = load_fleet(folder)

    assert service_probe.service_of(fleet.model("alpha"), fleet.workspace.serving) == Service(
        "alpha", "http://127.0.0.1:8123/models/alpha/ready", "http://127.0.0.1:8123/metrics", "fleet-secret"
    )


# --- p95 latency, from the service's own histogram ----------------------------------------------------------------
def test_p95_latency_is_read_from_the_services_histogram_for_the_requests_since_the_previous_probe(
    config_factory, service
):
    cfg = sla_config(config_factory, service.port, p95_latency_ms=50)
    for _ in range(100):
        service.metrics.latency.observe(0.004)
    fast = check(cfg)
    idle = check(cfg)  # no request since: nothing to judge
    for _ in range(100):
        service.metrics.latency.observe(0.3)
    slow = check(cfg)

    # as Prometheus' histogram_quantile: 95% of the way through the (2.5 ms, 5 ms] and (250 ms, 500 ms] buckets
    assert fast.evaluations[0].value == pytest.approx(4.875)
    assert idle.evaluations == []
    assert slow.evaluations[0].value == pytest.approx(487.5)
    assert [b.sla for b in slow.breaches] == ["p95_latency_ms"]
    assert sla.compliance(cfg) == {"p95_latency_ms": 0.5}


def test_a_fleet_services_series_of_other_models_are_left_out_and_a_restart_starts_the_count_again():
    exposition = "\n".join(
        [
            "# TYPE driftline_request_latency_seconds histogram",
            'driftline_request_latency_seconds_bucket{le="0.01",model="alpha"} 10.0',
            'driftline_request_latency_seconds_bucket{le="+Inf",model="alpha"} 10.0',
            'driftline_request_latency_seconds_bucket{le="0.01",model="beta"} 0.0',
            'driftline_request_latency_seconds_bucket{le="+Inf",model="beta"} 99.0',
            "",
        ]
    )
    alpha = service_probe.latency_buckets(exposition, "alpha")

    assert alpha == {"0.01": 10.0, "+Inf": 10.0}
    assert service_probe.since(alpha, {"0.01": 40.0, "+Inf": 40.0}) == alpha  # counts went down: a restart
    assert service_probe.quantile({"0.01": 0.0, "+Inf": 5.0}, 0.95) == 0.01  # past the last bucket: its bound


# --- freshness and label delay, from the prediction log and the label store -------------------------------------------
def log_batch(cfg: DriftlineConfig, folder: Path, source: str, ids: list[str], scores: list[float], now: datetime):
    """Rows logged as batch scoring logs them (the online service's are logged under its own source)."""
    frame = pd.DataFrame({"customer_id": ids})
    proba = np.array([[1 - s, s] for s in scores])
    predictions = Predictions((proba[:, 1] > 0.5).astype(int), proba, np.array([0, 1]))
    rows = prediction_log.records(frame, predictions, cfg, "3", source, "fp", now)
    prediction_log.append(rows, folder, source, now=now)


def store_labels(cfg: DriftlineConfig, folder: Path, labels: dict[str, int], now: datetime) -> None:
    path = folder.parent / f"labels-{now:%H%M%S%f}.csv"
    pd.DataFrame({"customer_id": list(labels), "churned": list(labels.values())}).to_csv(path, index=False)
    label_store.store_labels(label_store.load_labels(path, cfg, [0, 1]), folder, now=now)


def test_freshness_counts_from_the_last_scored_batch_and_label_delay_from_the_last_labels(config_factory):
    cfg = sla_config(config_factory, 1, freshness_hours=24, label_delay_hours=100)
    folders = cfg.registry_folders("0123456789abcdef")
    now = datetime.now(UTC)
    log_batch(cfg, folders.prediction_log, "monday.csv", ["C1", "C2"], [0.9, 0.1], now - timedelta(hours=30))
    log_batch(cfg, folders.prediction_log, "online", ["C3"], [0.8], now - timedelta(hours=1))  # not a batch
    store_labels(cfg, folders.label_store, {"C1": 1}, now - timedelta(hours=80))
    checked = check(cfg, folders)

    values = {e.sla: round(e.value) for e in checked.evaluations}
    assert values == {"freshness_hours": 30, "label_delay_hours": 80}
    assert [b.sla for b in checked.breaches] == ["freshness_hours"]
    assert "monday.csv" in checked.breaches[0].detail
    assert sla.compliance(cfg) == {"freshness_hours": 0.0, "label_delay_hours": 1.0}


def test_nothing_scored_or_labeled_yet_is_not_evaluated(config_factory):
    cfg = sla_config(config_factory, 1, freshness_hours=24, label_delay_hours=100, performance_floor=0.7)
    checked = check(cfg, cfg.registry_folders("0123456789abcdef"))

    assert checked.evaluations == []
    assert sla.compliance(cfg) == {"performance_floor": None, "freshness_hours": None, "label_delay_hours": None}
    assert sla.breaching(cfg) == []


# --- the performance floor, on each labeled batch ---------------------------------------------------------------------
def test_performance_floor_is_judged_once_on_each_labeled_batch(config_factory):
    cfg = sla_config(config_factory, 1, performance_floor=0.7)  # roc_auc, a score: at least 0.7
    folders = cfg.registry_folders("0123456789abcdef")
    rng = np.random.default_rng(0)
    truth = {f"G{i}": int(rng.random() < 0.5) for i in range(40)}
    good = [0.8 if truth[i] else 0.2 for i in truth]
    now = datetime.now(UTC)
    log_batch(cfg, folders.prediction_log, "good.csv", list(truth), good, now - timedelta(hours=2))
    flipped = {i.replace("G", "B"): label for i, label in truth.items()}
    log_batch(cfg, folders.prediction_log, "bad.csv", list(flipped), [1 - s for s in good], now - timedelta(hours=1))
    store_labels(cfg, folders.label_store, truth | flipped, now)

    first = check(cfg, folders)
    again = check(cfg, folders)  # no new labels: no new judgement

    assert [(e.value, e.within) for e in first.evaluations] == [(1.0, True), (0.0, False)]
    assert first.evaluations[1].detail == "roc_auc on 40 labeled rows of bad.csv (v3)"
    assert [b.sla for b in first.breaches] == ["performance_floor"]
    assert again.evaluations == []
    assert sla.compliance(cfg) == {"performance_floor": 0.5}


def test_an_error_metric_must_stay_at_or_under_its_floor(config_factory):
    from testkit.configs import TASK_KINDS

    cfg = load_config(config_factory(**TASK_KINDS["regression"], sla={"performance_floor": 5.0}))

    assert sla.within(cfg, "performance_floor", 4.0, 5.0) and not sla.within(cfg, "performance_floor", 6.0, 5.0)


# --- the records ------------------------------------------------------------------------------------------------------
def test_compliance_and_breaches_cover_the_window_only_and_the_bound_the_config_sets_now(config_factory, service):
    cfg = sla_config(config_factory, service.port, availability=0.9)
    service.ready = False
    check(cfg)
    later = datetime.now(UTC) + timedelta(days=cfg.sla.window_days)
    looser = cfg.model_copy(update={"sla": cfg.sla.model_copy(update={"availability": 0.0})})

    assert sla.compliance(cfg) == {"availability": 0.0} and len(sla.breaching(cfg)) == 1
    assert sla.compliance(cfg, later) == {"availability": None} and sla.breaching(cfg, later) == []
    assert sla.breaching(looser) == []  # 0.0 is within a bound of 0.0


def test_concurrent_checks_keep_every_record_whole_and_counted(config_factory):
    cfg = sla_config(config_factory, free_port(), availability=0.5)
    probe = Probe(False, "503: no champion", None)
    workers = [threading.Thread(target=lambda: [sla.evaluate(cfg, probe, None) for _ in range(10)]) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    records = sla.read_records(cfg)  # each outside its bound: each kept as evidence
    assert len(records) == 60 and not any(r.within for r in records)
    assert [sum(day) for day in zip(*sla.read_state(cfg).probes.values(), strict=True)] == [60, 0]
    assert sla.compliance(cfg) == {"availability": 0.0}


def test_a_model_within_its_slas_keeps_one_record_until_it_changes(config_factory):
    cfg = sla_config(config_factory, free_port(), availability=0.6)
    for ready in (True, True, False, False, True, True):
        sla.evaluate(cfg, Probe(ready, "ready" if ready else "503", None), None)
    # the first, the one outside (2 of 4), the recovery (3 of 5); not the other three within
    assert [round(r.value, 2) for r in sla.read_records(cfg)] == [1.0, 0.5, 0.6]
    assert list(sla.read_state(cfg).days.values()) == [{"availability": [6, 5]}]  # every one counted
