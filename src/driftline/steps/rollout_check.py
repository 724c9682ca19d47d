"""The held challenger judged on the labeled live rows (shadow or canary) and the verdict logged in the label join's
MLflow run. Calls the `Registry`: the registry never imports it."""

from __future__ import annotations

from driftline.config import DriftlineConfig
from driftline.governance.rollout import RolloutVerdict, judge_canary, judge_shadow
from driftline.registry import Champion, Registry
from driftline.steps.performance_check import PerformanceReport


def judge_rollout(cfg: DriftlineConfig, champion: Champion, report: PerformanceReport) -> RolloutVerdict | None:
    """The held challenger's labeled live rows against the champion's: promote, hold or drop (None: none held)."""
    registry = Registry(cfg)
    held = registry.live_challenger()
    if held is None:
        return None
    judge = judge_shadow if cfg.rollout.mode == "shadow" else judge_canary
    classes = champion.reference.trained_classes(cfg.dataset)
    verdict = judge(report.labeled, cfg, champion.ref.version, held.version, classes)
    registry.log_rollout(report.mlflow_run_id, verdict.summary, verdict.evidence, verdict.batch_points(report.steps))
    return verdict
