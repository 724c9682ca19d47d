"""The performance-monitoring deployment and its notification, as `driftline deploy` sets them up."""

import importlib
import os
import uuid
from pathlib import Path

import yaml
from jinja2 import Template
from testkit.paths import PROJECT_ROOT

from driftline.config import load_config
from driftline.flows.deploy import FLOWS, MESSAGES, deploy_env, notification_automations
from driftline.tasks.events import FAIRNESS_BREACHED, PERFORMANCE_DEGRADED, SLICE_DEGRADED

PERFORMANCE_ENTRYPOINT = "driftline.flows.performance_monitoring:performance_monitoring"


def performance_deployment(env: dict[str, str], monkeypatch) -> dict:
    """The performance-monitoring deployment of prefect.yaml as `prefect deploy` renders it in the environment
    `driftline deploy` gives it (`deploy_env`'s values): Prefect's own templating of `{{ $NAME }}`."""
    from prefect.utilities.templating import apply_values

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    deployments = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    [deployment] = [d for d in deployments if d["entrypoint"] == PERFORMANCE_ENTRYPOINT]
    return apply_values(deployment, dict(os.environ), remove_notset=False)


def test_degradation_is_notified_and_the_label_schedule_runs_only_with_labels(config_factory, monkeypatch):
    schedule = {"performance_monitoring": {"cron": "30 5 * * 1", "timezone": "Europe/Paris"}}
    cfg = load_config(config_factory(labels={"enabled": True}, schedules=schedule))
    [automation] = [
        a for a in notification_automations(cfg, str(uuid.uuid4())) if PERFORMANCE_DEGRADED in a.trigger.expect
    ]
    assert automation.name == "driftline churn-demo: performance degraded"
    [action] = automation.actions
    event = {
        "resource": {"driftline.model": "churn-demo"},
        "payload": {
            "champion_version": "4",
            "reason": "roc_auc 0.702 on 600 labelled rows, 0.081 below 0.783 at promotion",
            "retraining": "started",
            "mlflow_run_id": "abc",
            "mlflow_run_url": "http://mlflow/runs/abc",
        },
    }
    assert Template(action.subject).render(event=event) == "driftline churn-demo: champion v4 degraded"
    assert Template(action.body).render(event=event) == (
        "roc_auc 0.702 on 600 labelled rows, 0.081 below 0.783 at promotion. Retraining: started. "
        "MLflow run abc http://mlflow/runs/abc"
    )

    deployed = performance_deployment(deploy_env(cfg, "c.yaml", Path("/srv/project"), "pool"), monkeypatch)
    assert deployed["schedules"] == [{"cron": "30 5 * * 1", "timezone": "Europe/Paris", "active": "true"}]
    assert (deployed["name"], deployed["work_pool"], deployed["parameters"]) == (
        "churn-demo",
        {"name": "pool", "work_queue_name": "churn-demo"},
        {"params": {"config": "c.yaml"}},
    )
    without = load_config(config_factory(labels={"enabled": False}, schedules=schedule))
    paused = performance_deployment(deploy_env(without, "c.yaml", Path("/srv/project"), "pool"), monkeypatch)
    assert paused["schedules"][0]["active"] == "false"  # deployed for manual runs, its schedule paused

    # `driftline deploy` reports `<flow>/<model>` for each of FLOWS: the flow this entrypoint names must be one
    module, function = PERFORMANCE_ENTRYPOINT.split(":")
    flow_name = getattr(importlib.import_module(module), function).name
    assert flow_name == "performance-monitoring" and FLOWS.count(flow_name) == 1


def test_slice_and_fairness_breaches_are_notified_in_words(config_factory):
    cfg = load_config(config_factory(labels={"enabled": True}))
    names = {
        a.name
        for a in notification_automations(cfg, str(uuid.uuid4()))
        if a.trigger.expect & {FAIRNESS_BREACHED, SLICE_DEGRADED}
    }
    assert names == {"driftline churn-demo: fairness breached", "driftline churn-demo: slice degraded"}
    event = {
        "resource": {"driftline.model": "churn-demo"},
        "payload": {
            "champion_version": "3",
            "reason": "disparate impact on region 0.000 < 0.8 in b.csv",
            "positive_rates": {"south": 0.0, "north": 0.49},
            "retraining": "labels.fairness_counts_as_degradation is off",
            "mlflow_run_id": "abc",
            "mlflow_run_url": None,
        },
    }
    subject, body = (Template(text).render(event=event) for text in MESSAGES[FAIRNESS_BREACHED])
    assert subject == "driftline churn-demo: fairness of champion v3 breached"
    assert body.startswith("disparate impact on region 0.000 < 0.8 in b.csv (positive rates")
    assert "Retraining: labels.fairness_counts_as_degradation is off." in body
