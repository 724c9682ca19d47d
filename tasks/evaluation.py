"""Task: judge the challenger against the champion on the same holdout and record the decision."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.evaluation import markdown
from driftline.evaluation.gate import GateDecision
from driftline.steps import gate
from driftline.steps.challenger import TrainedCandidate
from driftline.tasks.events import GATE_REFUSED, emit_model_event
from driftline.tasks.publishing import links_markdown, publish_markdown
from driftline.tasks.registry import run_actor
from driftline.tasks.retries import retried


@task(name="evaluate-gate", cache_policy=NO_CACHE, **retried(2, [2, 10]))
def evaluate_gate(candidate: TrainedCandidate, cfg: DriftlineConfig) -> GateDecision:
    """The decision as markdown in the UI (with where MLflow keeps it); a refusal is announced as an event."""
    recorded = gate.judge_challenger(candidate, cfg, run_actor())
    decision, version, run_id = recorded.decision, candidate.ref.version, candidate.ref.run_id
    links = {
        "MLflow training run": recorded.run_url,
        f"model version v{version}": recorded.version_url,
        "gate.json": recorded.gate_url,
    }
    publish_markdown(
        cfg,
        "gate",
        markdown.gate_markdown(decision, version) + "\n\n" + links_markdown(links, run_id),
        f"Gate for {cfg.registry.model_name} v{version}: {decision.verdict}",
    )
    if not decision.promote:
        emit_model_event(
            GATE_REFUSED,
            cfg,
            {
                "version": version,
                "champion_version": decision.champion_version,
                "metric": decision.metric,
                "reasons": decision.reasons,
                "mlflow_run_id": run_id,
                "model_version_url": recorded.version_url,
            },
        )
    return decision
