"""Task: judge the challenger against the champion on the same holdout and record the decision."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.evaluation import gate, markdown
from driftline.registry import Registry
from tasks.artifacts import links_markdown, publish_markdown
from tasks.events import GATE_REFUSED, emit_model_event
from tasks.registry import run_actor
from tasks.training import TrainedCandidate


@task(name="evaluate-gate", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def evaluate_gate(candidate: TrainedCandidate, cfg: DriftlineConfig) -> gate.GateDecision:
    registry = Registry(cfg)
    champion = registry.champion()
    trained = candidate.trained
    decision = gate.judge(
        cfg, trained.model, trained.holdout, trained.metrics,
        registry.load_model(champion) if champion is not None else None, champion.version if champion else None,
    )  # fmt: skip
    registry.record_gate(candidate.ref, decision, run_actor())
    registry.log_importances(candidate.ref, decision.explanation.challenger)
    version, run_id = candidate.ref.version, candidate.ref.run_id
    links = {
        "MLflow training run": registry.run_url(run_id),
        f"model version v{version}": registry.version_url(version),
        "gate.json": registry.artifact_url(run_id, "gate.json"),
    }
    publish_markdown(
        cfg, "gate", markdown.gate_markdown(decision, version) + "\n\n" + links_markdown(links, run_id),
        f"Gate for {cfg.registry.model_name} v{version}: {decision.verdict}",
    )  # fmt: skip
    if not decision.promote:
        emit_model_event(GATE_REFUSED, cfg, {
            "version": version, "champion_version": decision.champion_version, "metric": decision.metric,
            "reasons": decision.reasons, "mlflow_run_id": run_id, "model_version_url": registry.version_url(version),
        })  # fmt: skip
    return decision
