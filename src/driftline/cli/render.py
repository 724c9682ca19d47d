"""What the commands print: the console, rich tables, and the lines that describe outcomes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from driftline.config import DriftlineConfig

if TYPE_CHECKING:
    from pathlib import Path

    from driftline.data.archive import ArchivedBatch
    from driftline.data.ledger import LandingStatus
    from driftline.flows.params import EstimateOutcome, TrainingOutcome
    from driftline.governance.reproduce import Reproduction
    from driftline.monitoring.kpis import Kpis
    from driftline.registry.audit_events import AuditEvent

console = Console(highlight=False)


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def versions_table(cfg: DriftlineConfig) -> Table:
    from driftline.registry import Registry

    metric = cfg.primary_metric
    table = Table(title=f"Model versions of {cfg.registry.model_name}", title_justify="left")
    for column in ("version", "aliases", metric, "gate", "training data (fingerprint: rows)", "trigger", "commit"):
        table.add_column(column)
    for info in Registry(cfg).versions():
        described = info.to_dict()
        sources = ", ".join(f"{source['fingerprint'][:10]}: {source['rows']}" for source in described["data"])
        gate = ("retired, " if described["retired"] else "") + (info.gate_verdict or "–")
        table.add_row(
            f"v{info.version}",
            ", ".join(info.aliases) or "–",
            fmt(info.metrics.get(metric)),
            gate,
            sources,
            described["trigger"],
            (described["git_commit"] or "")[:12],
        )
    return table


def estimate_lines(estimate: EstimateOutcome) -> list[str]:
    """The champion's metric estimated before labels: the figure and band, the estimator's trust, the label-shift
    check, the verdict against the metric at promotion."""
    if estimate.value is None:
        return [f"estimate: {escape(estimate.verdict)}"]
    band = "" if estimate.lower is None else f" [{fmt(estimate.lower)}, {fmt(estimate.upper)}]"
    trust = "trusted" if estimate.trusted else "[yellow]untrusted[/]"
    lines = [
        f"estimated {estimate.metric} {fmt(estimate.value)}{band} on {estimate.rows} rows (v{estimate.model_version}, "
        f"{fmt(estimate.at_promotion)} at promotion); estimator {trust}: {escape(estimate.trust_reason)}"
    ]
    if estimate.others:
        lines.append("  also estimated: " + ", ".join(f"{name} {fmt(v)}" for name, v in estimate.others.items()))
    for name, value in estimate.slices.items():
        trusted = estimate.slice_trust.get(name)
        state = "" if trusted is None else "; estimator trusted" if trusted else "; estimator [yellow]untrusted[/]"
        lines.append(f"  slice {escape(name)}: estimated {fmt(value)}{state}")
    if estimate.labels_with_the_batch:
        lines.append(f"  labels came with the batch: {escape(estimate.labels_with_the_batch)}")
    if estimate.label_shift:
        lines.append(f"  [yellow]label shift flagged[/]: {escape(estimate.label_shift_reason)}")
    if estimate.degraded:
        lines.append(f"  [yellow]estimated degradation[/]: {escape(estimate.verdict)}")
    elif not estimate.decides:
        lines.append("  the estimate decides nothing (untrusted, or flagged)")
    return lines


def estimate_brief(estimate: EstimateOutcome) -> str:
    """One line of the demo: the estimate before labels and, when the batch came with its labels, what they said."""
    if estimate.value is None:
        return f"estimate: {escape(estimate.verdict)}"
    band = "" if estimate.lower is None else f" [{fmt(estimate.lower)}, {fmt(estimate.upper)}]"
    trust = "trusted" if estimate.trusted else "untrusted"
    line = f"estimated {estimate.metric} {fmt(estimate.value)}{band} before labels (estimator {trust})"
    if estimate.within is None:
        return line
    return f"{line}; its labels: {fmt(estimate.realized)}, {'inside' if estimate.within else 'OUTSIDE'} the band"


def landing_lines(cfg: DriftlineConfig, status: LandingStatus) -> list[str]:
    """The landing folder's state: each file pending, announced, running or failed by name; done as counts and the
    most recent ones."""
    from pathlib import Path

    done = status.succeeded + status.rejected
    lines = [
        f"landing folder {cfg.folders.landing}: {len(status.pending)} pending, {len(status.announced)} announced, "
        f"{len(status.running)} running, {len(status.failed)} failed, {done} done "
        f"({status.succeeded} succeeded, {status.rejected} rejected)"
    ]
    lines += [
        f"  pending    {Path(path).name} (complete, not announced yet: is the watcher running?)"
        for path in status.pending
    ]
    lines += [f"  announced  {Path(path).name} (no run has started yet)" for path in status.announced]
    lines += [f"  running    {Path(o.data).name} (run {o.flow_run_id}, since {o.at})" for o in status.running]
    lines += [f"  failed     {Path(o.data).name}: {o.reason} (run {o.flow_run_id}, at {o.at})" for o in status.failed]
    if status.failed:
        lines.append("             retry: drop the file again, or driftline watch --retry-failed --config <config>")
    lines += [f"  {o.state:<9}  {Path(o.data).name} (at {o.at})" for o in status.recent]
    return lines


def describe_training(outcome: TrainingOutcome, with_reasons: bool = True) -> str:
    vs = f" vs champion {fmt(outcome.champion_value)}" if outcome.champion_value is not None else ""
    line = f"v{outcome.candidate_version} {outcome.verdict} ({outcome.metric} {fmt(outcome.challenger_value)}{vs})"
    # escaped: the gate names slices `roc_auc[contract=two-year]`, which rich would take for markup and drop
    return f"{line}: {escape('; '.join(outcome.reasons))}" if with_reasons and outcome.verdict != "promoted" else line


def audit_table(cfg: DriftlineConfig, events: list[AuditEvent]) -> Table:
    table = Table(title=f"Audit log of {cfg.registry.model_name} ({cfg.audit_experiment_name})", title_justify="left")
    for column in ("at (UTC)", "action", "version", "actor", "reason", "champion", "previous"):
        table.add_column(column)
    for event in events:
        table.add_row(
            event.at,
            str(event.action),
            f"v{event.version}" if event.version else "–",
            str(event.actor),
            event.reason[:120],
            _moved(event.before.champion, event.after.champion),
            _moved(event.before.previous, event.after.previous),
        )
    return table


def archive_table(cfg: DriftlineConfig, archive_dir: Path, entries: list[ArchivedBatch]) -> Table:
    table = Table(title=f"Archived batches of {cfg.registry.model_name} ({archive_dir})", title_justify="left")
    for column in ("source", "fingerprint", "rows", "labeled", "archived at (UTC)", "by", "in retraining"):
        table.add_column(column)
    for entry in entries:
        removed = f"removed {(entry.removed_at or '')[:19]} by {entry.removed_by}: {entry.removal_reason}"
        state = "yes" if entry.in_use else removed
        table.add_row(
            entry.source_name,
            entry.fingerprint[:16],
            str(entry.rows),
            "yes" if entry.labeled else "no",
            entry.archived_at[:19],
            entry.archived_by or "–",
            state,
        )
    return table


def _moved(before: str | None, after: str | None) -> str:
    shown = [f"v{before}" if before else "–", f"v{after}" if after else "–"]
    return shown[1] if before == after else " → ".join(shown)


def reproduction_table(version: str, found: Reproduction) -> Table:
    table = Table(title=f"Reproduction of v{version} (tolerance {found.tolerance:g})", title_justify="left")
    for column in ("metric", "recorded", "reproduced", "difference"):
        table.add_column(column)
    for match in found.metrics:
        difference = "–" if match.difference is None else f"{match.difference:.2e}"
        table.add_row(match.name, fmt(match.recorded), fmt(match.reproduced), difference)
    return table


def kpis_table(cfg: DriftlineConfig, measured: Kpis) -> Table:
    table = Table(title=f"Operational KPIs of {cfg.registry.model_name}", title_justify="left")
    for column in ("KPI", "value", "measured as"):
        table.add_column(column)
    for row in measured.rows():
        table.add_row(*row)
    return table


def demo_summary(cfg: DriftlineConfig, outcomes: list[tuple[str, str, str, str]]) -> None:
    """The batches and the versions the demo made, then where to look at what ran."""
    console.rule("summary")
    batches = Table(title="Batches", title_justify="left")
    for column in ("batch", "validation", "drift", "retraining"):
        batches.add_column(column)
    for row in outcomes:
        batches.add_row(*row)
    console.print(batches)
    console.print(versions_table(cfg))
    console.print(
        "\nLook at what just ran:\n"
        f"  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri {cfg.tracking_uri}   (or: make ui-mlflow)\n"
        f"  Prefect UI:  make up   (or: make ui-prefect; runs in {cfg.folders.root / 'prefect' / 'prefect.db'})\n"
        f"  Registry:    .venv/bin/driftline status --config {cfg.source}\n"
        f"  Quarantine:  {cfg.folders.quarantine}\n"
        f"  Reports:     {cfg.folders.reports}"
    )
