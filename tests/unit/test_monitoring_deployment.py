"""The performance-monitoring deployment and its notification, as `driftline deploy` sets them up."""

import uuid
from pathlib import Path

import yaml
from testkit.paths import PROJECT_ROOT

from driftline.config import load_config
from flows.deploy import FLOWS, MESSAGES, deploy_env, notification_automations
from tasks.events import PERFORMANCE_DEGRADED


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
    assert "flows/performance_monitoring.py:performance_monitoring" in entrypoints
    assert "performance-monitoring" in FLOWS and len(FLOWS) == len(entrypoints)
