"""Tasks of the sla-check: every model's service probed from outside and its SLAs evaluated and recorded, breaches
announced, one table per run.

No retries: a probe is a measurement (probing again would count twice), and the next scheduled check, a probe
interval later, is the retry of a model whose registry was unreachable."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from driftline.config import Fleet
from driftline.fleet import sla
from driftline.fleet.sla import Checked, Unchecked
from driftline.tasks.events import SLA_BREACHED, emit_model_event

SLA_ARTIFACT = "fleet-sla"


@task(name="check-slas", cache_policy=NO_CACHE)
def check_slas(fleet: Fleet, served_together: bool) -> list[Checked | Unchecked]:
    """Probe each model's /ready and /metrics, read its prediction log and label store, record every evaluation."""
    return sla.check_fleet(fleet, served_together)


@task(name="notify-sla-breaches", cache_policy=NO_CACHE)
def notify_sla_breaches(checked: list[Checked | Unchecked], fleet: Fleet) -> int:
    """One `driftline.sla.breached` event per SLA that went out of bounds in this check; returns how many."""
    sent = 0
    for one in checked:
        for breach in one.breaches if isinstance(one, Checked) else []:
            payload = {"sla": breach.sla, "value": breach.value, "bound": breach.bound, "detail": breach.detail}
            emit_model_event(SLA_BREACHED, fleet.model(one.model), {**payload, "at": breach.at})
            sent += 1
    return sent


@task(name="publish-slas", cache_policy=NO_CACHE)
def publish_slas(checked: list[Checked | Unchecked], fleet: Fleet) -> None:
    """A table: per model and SLA, this check's value against its bound and the compliance over the window."""
    rows = []
    for one in checked:
        if isinstance(one, Unchecked):
            rows.append(_row(one.model, "(not checked)", None, None, None, None, one.problem))
            continue
        shares = sla.compliance(fleet.model(one.model))
        for e in one.evaluations:
            rows.append(_row(one.model, e.sla, round(e.value, 4), e.bound, e.within, shares.get(e.sla), e.detail))
    breached = sum(len(one.breaches) for one in checked if isinstance(one, Checked))
    broken = "; ".join(f"{b.path.name}: {b.problem}" for b in fleet.broken)
    description = f"SLA check of {len(checked)} models: {len(rows)} rows, {breached} new breaches." + (
        f" Configs that do not load (not checked): {broken}" if broken else ""
    )
    create_table_artifact(table=rows, key=SLA_ARTIFACT, description=description)


def _row(
    model: str,
    name: str,
    value: float | None,
    bound: float | None,
    within: bool | None,
    compliance: float | None,
    detail: str,
) -> dict:
    share = None if compliance is None else round(compliance, 4)
    return {
        "model": model,
        "sla": name,
        "value": value,
        "bound": bound,
        "within": within,
        "compliance": share,
        "detail": detail,
    }
