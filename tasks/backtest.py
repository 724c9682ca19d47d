"""Tasks of a backtest: the history in time order, the served model measured on each batch's labels, the result
written (JSON, chart, HTML) and published as Prefect artifacts, and recorded in MLflow."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.backtest import ordering, prequential, report, table
from driftline.backtest.ordering import HistoryFile
from driftline.backtest.report import BacktestFiles
from driftline.backtest.results import Backtest
from driftline.config import DriftlineConfig
from driftline.steps import backtest_record
from driftline.tasks.publishing import publish_markdown, publish_table
from driftline.tasks.retries import retried


@task(name="order-history", cache_policy=NO_CACHE)
def order_history(paths: list[str], cfg: DriftlineConfig) -> list[HistoryFile]:
    return ordering.history_of(paths, cfg)


@task(name="measure-served", cache_policy=NO_CACHE)
def measure_served(output: str, batch: Path, cfg: DriftlineConfig) -> dict[str, float]:
    """The served model's metrics on the batch's own labels (prequential), from its scoring output."""
    return prequential.served_metrics(Path(output), batch, cfg)


@task(name="write-backtest", cache_policy=NO_CACHE)
def write_backtest(result: Backtest, folder: Path, cfg: DriftlineConfig) -> BacktestFiles:
    """backtest.json, .png and .html in `folder`; the per-batch table and the chart with the totals as Prefect
    artifacts."""
    files = report.write_outputs(result, folder)
    verdict = table.verdict(result)
    publish_table(cfg, "backtest", table.batch_rows(result, separator=" · "), f"{verdict}. Files: {files.html.parent}")
    publish_markdown(cfg, "backtest-chart", table.markdown(result, files.png), f"Backtest of {result.name}")
    return files


@task(name="record-backtest", cache_policy=NO_CACHE, **retried(2, [2, 10]))
def record_backtest(result: Backtest, files: BacktestFiles, cfg: DriftlineConfig) -> backtest_record.RecordedBacktest:
    return backtest_record.record_backtest(result, files, cfg)
