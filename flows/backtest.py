"""Flow: replay a history through the loop under each policy, each in its own temporary workspace and registry, and
compare what each served (prequential: every batch scored by the champion of its moment, before any retraining)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from driftline.backtest import progress, table
from driftline.backtest.ordering import split_history
from driftline.backtest.policies import Policy, plan
from driftline.backtest.report import output_folder
from driftline.backtest.results import REJECTED, Backtest, PolicyReplay, ReplayedBatch, Start
from driftline.backtest.workspace import ReplayWorkspace, replay_workspace, sandbox
from driftline.config import load_config
from driftline.errors import DataRejected, GateRefused
from driftline.flows.continuous_training import continuous_training
from driftline.flows.params import BacktestOutcome, BacktestParams, BatchParams, TrainParams
from driftline.flows.training import training
from driftline.modeling.metrics import greater_is_better
from driftline.tasks.backtest import measure_served, order_history, record_backtest, write_backtest


@flow(name="backtest")
def backtest(params: BacktestParams) -> BacktestOutcome:
    cfg = load_config(params.config)
    output = output_folder(params.output, cfg, datetime.now(UTC))  # refused now, not after hours of replay
    history = order_history(params.data, cfg)  # time order; every file in an allowed folder
    initial, _ = split_history(history, params.initial)
    replays = []
    with sandbox() as folder:  # a temporary folder, removed at the end whatever happens
        for policy in plan(params.policies, params.variants):
            with replay_workspace(cfg, policy, history, folder) as workspace:  # its own workspace and MLflow store
                replays.append(replay(workspace, len(initial)))
    metric = cfg.primary_metric
    result = Backtest(
        cfg.name, metric, greater_is_better(cfg.dataset.task, metric), history, len(initial), replays, datetime.now(UTC)
    )
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
def replay(workspace: ReplayWorkspace, initial: int) -> PolicyReplay:
    """One policy: the first champion from the first files, then each later file through continuous training."""
    config, policy = str(workspace.config), workspace.policy
    start = first_champion(config, workspace.files[:initial], policy)
    batches = [replay_batch(config, path, policy) for path in workspace.files[initial:]]
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


def replay_batch(config: str, path: Path, policy: Policy) -> ReplayedBatch:
    """Exactly what `driftline run` does with the file, then the served model judged on the file's labels."""
    started = time.perf_counter()
    try:
        summary = continuous_training(BatchParams(config=config, data=str(path)))
    except DataRejected as rejected:  # quarantined in the replay's workspace, as a live run would
        replayed = ReplayedBatch(
            path.name, None, REJECTED, note="; ".join(rejected.reasons), seconds=time.perf_counter() - started
        )
    else:
        seconds = time.perf_counter() - started
        served = measure_served(summary.scoring.output, path, load_config(config)) if summary.scoring else {}
        replayed = summary.replayed(served, seconds)
    progress.announce(progress.Step(policy.name, path.name, table.outcome(replayed)))
    return replayed
