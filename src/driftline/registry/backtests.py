"""The backtests experiment (`<experiment>-backtests`): one MLflow run per backtest, beside the model's experiment and
never in its registry: a replay's versions live in its own temporary store."""

from __future__ import annotations

from pathlib import Path

from driftline.registry.client import Connection
from driftline.registry.refs import MAX_TAG_VALUE, RUN_TYPE
from driftline.registry.runs import Point, log_points

BACKTEST_RUN_TYPE = "backtest"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter's value


class BacktestLog:
    def __init__(self, connection: Connection):
        self._connection, self._client = connection, connection.client

    @property
    def experiment_id(self) -> str:
        return self._connection.experiment_named(self._connection.cfg.backtest_experiment_name)

    def log(
        self, run_name: str, tags: dict[str, str], params: dict[str, str], points: list[Point], artifacts: list[Path]
    ) -> str:
        """One finished run: tags, parameters, metrics with their steps and times, and the files."""
        tags = {RUN_TYPE: BACKTEST_RUN_TYPE, **{key: value[:MAX_TAG_VALUE] for key, value in tags.items()}}
        run = self._client.create_run(self.experiment_id, run_name=run_name[:250], tags=tags)
        run_id = run.info.run_id
        for key, value in params.items():
            self._client.log_param(run_id, key, value[:MAX_PARAM_VALUE])
        log_points(self._client, run_id, points)
        for path in artifacts:
            self._client.log_artifact(run_id, str(path))
        self._client.set_terminated(run_id)
        return run_id

    def run_url(self, run_id: str) -> str | None:
        ui = self._connection.cfg.mlflow_ui_url
        return f"{ui}/#/experiments/{self.experiment_id}/runs/{run_id}" if ui else None
