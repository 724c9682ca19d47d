"""Task: judge the challenger against the champion on the same holdout and record the decision."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline import evaluation
from driftline.config import DriftlineConfig
from driftline.registry import Registry
from tasks.artifacts import publish_markdown
from tasks.training import TrainedCandidate


@task(name="evaluate-gate", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def evaluate_gate(candidate: TrainedCandidate, cfg: DriftlineConfig) -> evaluation.GateDecision:
    registry = Registry(cfg)
    champion = registry.champion()
    champion_metrics = None
    if champion is not None:
        champion_model = registry.load_model(champion)
        champion_metrics = evaluation.holdout_metrics(champion_model, candidate.trained.holdout, cfg)
    decision = evaluation.decide(
        cfg, candidate.trained.metrics, champion_metrics, champion.version if champion else None
    )
    registry.record_gate(candidate.ref, decision)
    publish_markdown(
        cfg, "gate", evaluation.gate_markdown(decision, candidate.ref.version),
        f"Gate for {cfg.registry.model_name} v{candidate.ref.version}: {decision.verdict}",
    )  # fmt: skip
    return decision
