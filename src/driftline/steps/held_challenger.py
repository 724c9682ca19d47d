"""The challenger held for a shadow or canary rollout: held after its gate, loaded to score beside the champion."""

from __future__ import annotations

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision
from driftline.governance.rollout import Challenger
from driftline.registry import ModelRef, Registry
from driftline.registry.audit_events import Actor


def hold_for_rollout(candidate: ModelRef, cfg: DriftlineConfig, decision: GateDecision, actor: Actor) -> GateDecision:
    """A passed candidate stays `challenger`: the rollout on live batches decides its promotion."""
    settings = cfg.rollout
    until = f"a test of the arms on labeled rows ({settings.canary_share:.0%} of rows to the canary)"
    if settings.mode == "shadow":
        until = f"{settings.shadow_batches} labeled shadow batches without regression"
    held = decision.held(settings.mode, f"held as challenger for a {settings.mode} rollout until {until}")
    Registry(cfg).hold_for_rollout(candidate, held, actor)
    return held


def load_challenger(cfg: DriftlineConfig) -> Challenger | None:
    """Under rollout.mode shadow or canary: the held challenger, loaded; else (or when none is held) None."""
    if cfg.rollout.mode == "off":
        return None
    registry = Registry(cfg)
    held = registry.live_challenger()
    return Challenger.of(registry.load_model(held), held.version, cfg) if held else None
