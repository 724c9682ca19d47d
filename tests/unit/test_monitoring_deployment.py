"""The performance-monitoring deployment and its notification, as `driftline deploy` sets them up."""

import uuid
from pathlib import Path

import yaml
from driftline.flows.deploy import FLOWS, MESSAGES, deploy_env, notification_automations
from driftline.tasks.events import FAIRNESS_BREACHED, PERFORMANCE_DEGRADED, SLICE_DEGRADED
from testkit.paths import PROJECT_ROOT

from driftline.config import load_config


def test_degradation_is_notified_and_the_label_schedule_runs_only_with_labels(config_factory):
    cfg = load_config(config_factory(labels={"enabled": True}))
    [automation] = [
        a for a in notification_automations(cfg, str(uuid.uuid4())) if PERFORMANCE_DEGRADED in a.trigger.expect
    ]
    assert automation.name == "driftline churn-demo: performance degraded"
    assert "degraded" in MESSAGES[PERFORMANCE_DEGRADED][0]
    assert deploy_env(cfg, "c.yaml", Path("."), "pool")["DRIFTLINE_PERFORMANCE_ACTIVE"] == "true"
    without = load_config(config_factory(labels={"enabled": False}))
    assert deploy_env(without, "c.yaml", Path("."), "pool")["DRIFTLINE_PERFORMANCE_ACTIVE"] == "false"

    deployments = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    entrypoints = [d["entrypoint"] for d in deployments]
    assert "driftline.flows.performance_monitoring:performance_monitoring" in entrypoints
    assert "performance-monitoring" in FLOWS and len(FLOWS) == len(entrypoints)


def test_slice_and_fairness_breaches_are_notified_in_words(config_factory):
    from jinja2 import Template

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
