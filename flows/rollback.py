"""Flow: move `champion` back to `previous` (or a named version) in one step, recorded in the audit log."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from driftline.fleet.flow_runs import record_flow_run
from driftline.flows.params import RollbackOutcome, RollbackParams
from driftline.tasks.registry import roll_back


@flow(
    name="rollback",
    on_completion=[record_flow_run],  # the fleet's record of every flow run (driftline fleet status)
    on_failure=[record_flow_run],
    on_crashed=[record_flow_run],
)
def rollback(params: RollbackParams) -> RollbackOutcome:
    cfg = load_config(params.config)
    done = roll_back(cfg, params.reason, to=params.to_version, override_retired=params.override_retired)
    return RollbackOutcome(
        champion_version=done.champion, rolled_back_from=done.rolled_back_from, changed=done.changed, note=done.note
    )
