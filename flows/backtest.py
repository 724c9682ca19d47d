"""Flow: replay a history through the loop under each policy, each in its own temporary workspace and registry, and
compare what each served (prequential: every batch scored by the champion of its moment, before any retraining)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from driftline.backtest import progress, table
from driftline.backtest.delay import LaterFile, labels_due, require_ids
from driftline.backtest.ordering import split_history
from driftline.backtest.policies import Policy, plan
from driftline.backtest.report import output_folder
from driftline.backtest.results import (
    PROMOTED,
    REJECTED,
    SCORED,
    Backtest,
    LabelArrival,
    PolicyReplay,
    ReplayedBatch,
    Start,
)
from driftline.backtest.workspace import ReplayWorkspace, replay_workspace, sandbox
from driftline.config import load_config
from driftline.errors import DataRejected, GateRefused
from driftline.flows.continuous_training import continuous_training
from driftline.flows.params import (
    BacktestOutcome,
    BacktestParams,
    BatchParams,
    LabelParams,
    RunSummary,
    TrainParams,
)
from driftline.flows.performance_monitoring import performance_monitoring
from driftline.flows.training import training
from driftline.modeling.metrics import greater_is_better
from driftline.tasks.backtest import measure_served, order_history, record_backtest, write_backtest


@flow(name="backtest")
def backtest(params: BacktestParams) -> BacktestOutcome:
    cfg = load_config(params.config)
    output = output_folder(params.output, cfg, datetime.now(UTC))  # refused now, not after hours of replay
    history = order_history(params.data, cfg)  # time order; every file in an allowed folder
    initial, _ = split_history(history, params.initial)
    require_ids(cfg, params.label_delay)  # late labels are joined by id
    replays = []
    with sandbox() as folder:  # a temporary folder, removed at the end whatever happens
        for policy in plan(params.policies, params.variants):
            with replay_workspace(cfg, policy, history, len(initial), params.label_delay, folder) as workspace:
                replays.append(replay(workspace))  # in its own workspace and MLflow store
    metric = cfg.primary_metric
    better = greater_is_better(cfg.dataset.task, metric)
    result = Backtest(cfg.name, metric, better, history, len(initial), replays, datetime.now(UTC), params.label_delay)
    files = write_backtest(result, output, cfg)  # JSON, chart, HTML page; Prefect table and chart artifacts
    recorded = record_backtest(result, files, cfg)  # a run in <experiment>-backtests; the registry is untouched
    return BacktestOutcome(
        backtest=result,
        verdict=table.verdict(result),
        json_file=str(files.json),
        chart=str(files.png),
        page=str(files.html),
        mlflow_experiment=cfg.backtest_experiment_name,
        mlflow_run_id=recorded.run_id,
        mlflow_run_url=recorded.run_url,
    )


@flow(name="backtest-replay", flow_run_name="replay {workspace.policy.name}")
def replay(workspace: ReplayWorkspace) -> PolicyReplay:
    """One policy: the first champion from the first files, then each later file through continuous training; under
    a label delay K, after batch t the labels of batch t+1-K reach the loop (before batch t+1 is served)."""
    config, policy, later = str(workspace.config), workspace.policy, workspace.later
    start = first_champion(config, workspace.first, policy)
    batches: list[ReplayedBatch] = []
    for turn, file in enumerate(later):
        replayed = replay_batch(config, file, policy)
        due = labels_due(turn, len(later), workspace.label_delay)  # whose labels arrive before the next batch
        served = [*batches, replayed]
        if due is not None and served[due].status == SCORED and later[due].labels is not None:
            replayed = with_labels(replayed, labels_arrive(config, later[due], policy))
        batches.append(replayed)
    return PolicyReplay(policy, start, batches)


def first_champion(config: str, files: list[Path], policy: Policy) -> Start:
    """The training flow on the first files; a refused first model leaves nothing to replay (GateRefused)."""
    started = time.perf_counter()
    outcome = training(TrainParams(config=config, data=[str(path) for path in files], reason="backtest: first model"))
    if outcome.verdict != "promoted":
        raise GateRefused(
            f"policy {policy.name}: the first model v{outcome.candidate_version} was {outcome.verdict} "
            f"({'; '.join(outcome.reasons)}), so there is no champion to replay; lower gate.thresholds or train it on "
            "more files (--initial)"
        )
    start = Start(outcome.candidate_version, outcome.verdict, outcome.challenger_value, time.perf_counter() - started)
    progress.announce(progress.Step(policy.name, "first champion", f"v{start.version} from {len(files)} file(s)"))
    return start


def replay_batch(config: str, file: LaterFile, policy: Policy) -> ReplayedBatch:
    """Exactly what `driftline run` does with the file (without its labels under a delay), then the served model
    judged on the file's labels."""
    started = time.perf_counter()
    try:
        summary = continuous_training(BatchParams(config=config, data=str(file.seen)))
    except DataRejected as rejected:  # quarantined in the replay's workspace, as a live run would
        replayed = ReplayedBatch(
            file.name, None, REJECTED, note="; ".join(rejected.reasons), seconds=time.perf_counter() - started
        )
    else:
        seconds = time.perf_counter() - started
        served = measure_served(summary.scoring.output, file.labeled, load_config(config)) if summary.scoring else {}
        replayed = as_replayed(summary, served, seconds)
    progress.announce(progress.Step(policy.name, file.name, table.outcome(replayed)))
    return replayed


def as_replayed(summary: RunSummary, served: dict[str, float], seconds: float) -> ReplayedBatch:
    """The run as a replayed batch, with the rows its retrain trained on and the served champion's estimate of the
    batch before its labels (from the batch's features and the champion's predictions, as the loop made it)."""
    replayed, monitoring = summary.replayed(served, seconds), summary.monitoring
    if monitoring is None:
        return replayed
    retraining, estimate = monitoring.retraining, monitoring.estimate
    return replace(
        replayed,
        training_rows=retraining.training_rows if retraining else None,
        estimated_metric=estimate.value if estimate else None,
        estimated_lower=estimate.lower if estimate else None,
        estimated_upper=estimate.upper if estimate else None,
        estimate_note=estimate.verdict if estimate and estimate.value is None else "",
        estimate_trusted=estimate.trusted if estimate else None,
    )


def labels_arrive(config: str, file: LaterFile, policy: Policy) -> tuple[LabelArrival, float]:
    """What `driftline labels` does with the batch's label file: joined to the served predictions, the champion
    judged, a retrain when it degraded. A rejected label file is quarantined in the replay, as a live run would."""
    started = time.perf_counter()
    try:
        outcome = performance_monitoring(LabelParams(config=config, data=str(file.labels)))
    except DataRejected as rejected:
        arrival = LabelArrival(file.name, 0, note="; ".join(rejected.reasons))
    else:
        retraining = outcome.retraining
        arrival = LabelArrival(
            batch=file.name,
            rows=sum(outcome.label_files.values()),
            champion_value=outcome.champion_value,
            degraded=outcome.degraded,
            label_drift=bool(outcome.label_drift_reasons),
            candidate_version=retraining.candidate_version if retraining else None,
            gate=retraining.verdict if retraining else None,
            gate_reasons=retraining.reasons if retraining else [],
            training_rows=retraining.training_rows if retraining else None,
        )
    progress.announce(progress.Step(policy.name, f"labels of {file.name}", table.arrival(arrival)))
    return arrival, time.perf_counter() - started


def with_labels(replayed: ReplayedBatch, arrived: tuple[LabelArrival, float]) -> ReplayedBatch:
    """The batch with the labels that arrived after it: their time counted, a promotion serving from the next batch."""
    arrival, seconds = arrived
    after = arrival.candidate_version if arrival.gate == PROMOTED else replayed.champion_after
    return replace(replayed, labels=arrival, champion_after=after, seconds=replayed.seconds + seconds)
