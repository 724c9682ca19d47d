"""Flow: the running A/B test analysed on its business outcomes; halted, or with ab.auto_promote decided, in the
registry."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from driftline.config import load_config
from driftline.fleet.flow_runs import record_flow_run
from driftline.flows.params import DEFAULT_CONFIG
from driftline.tasks.ab_tests import (
    analyse_ab_test,
    end_ab_test,
    performance_floor_breach,
    publish_ab_report,
    receive_outcomes,
)
from driftline.tasks.registry import running_ab_test


class AbAnalysisParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")


class AbAnalysisOutcome(BaseModel):
    test: str | None = Field(description="The test analysed (None: no test was running).")
    decision: str = Field("", description="running | B wins | A wins | no difference")
    summary: str = ""
    action: str = Field("none", description="What the registry did: promote | keep | halt | none.")
    champion_version: str | None = Field(None, description="Who holds `champion` after this run, when it moved.")
    outcome_files: dict[str, int] = Field(default_factory=dict, description="Accepted outcome file -> rows.")
    rejected: list[str] = Field(default_factory=list, description="Outcome files quarantined, with the reasons.")


@flow(
    name="ab-analysis",
    on_completion=[record_flow_run],  # the fleet's record of every flow run (driftline fleet status)
    on_failure=[record_flow_run],
    on_crashed=[record_flow_run],
)
def ab_analysis(params: AbAnalysisParams) -> AbAnalysisOutcome:
    cfg = load_config(params.config)
    test = running_ab_test(cfg)
    if test is None:
        return AbAnalysisOutcome(test=None, summary="no A/B test is running")
    intake = receive_outcomes(cfg, test)  # a bad outcome file is quarantined; the others count
    report = analyse_ab_test(cfg, test)
    publish_ab_report(cfg, report, intake)
    breach = performance_floor_breach(cfg, test)  # arm A under its floor: the comparison no longer holds
    action = "halt" if breach else report.next_step(cfg.ab.auto_promote)
    reason = f"halted: {breach}" if breach else report.summary
    promoted = None
    if action != "none":
        promoted = end_ab_test(cfg, action == "promote", reason, report.evidence(), halted=action == "halt")
    return AbAnalysisOutcome(
        test=test.id,
        decision=report.decision,
        summary=reason,
        action=action,
        champion_version=promoted.version if promoted else None,
        outcome_files=intake.accepted,
        rejected=intake.rejected,
    )
