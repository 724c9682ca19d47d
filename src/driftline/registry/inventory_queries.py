"""What the registry knows of many models at once, in a few batched calls whatever the fleet's size: their aliases
and identities, the versions behind the aliases and the newest one, the champions' holdout metrics, the latest drift
figures; and, for the fleet report, each model's served metric and drift over the data's time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from driftline.config import DriftlineConfig
from driftline.registry.audit_events import Action
from driftline.registry.client import Connection
from driftline.registry.identity import REGISTRY_ID
from driftline.registry.refs import AUDIT, CHALLENGER, CHAMPION, HOLDOUT, RETIRED, RUN_TYPE, TAG
from driftline.registry.runs import TRENDS_RUN_TYPE, metric_key

NAMES_PER_QUERY = 200  # names in one `name IN (...)` filter
VERSIONS_PER_PAGE = 50_000
RUNS_PER_PAGE = 50_000  # MLflow's most per search_runs call
MODELS_PER_PAGE = 1000  # MLflow's most per search_registered_models call
EXPERIMENTS_PER_PAGE = 50_000


def _time(milliseconds: int | None) -> datetime | None:
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, UTC)


def _quoted(values: list[str]) -> str:
    return ", ".join("'" + value.replace("'", "\\'") + "'" for value in values)


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True)
class VersionFacts:
    version: str
    run_id: str
    created_at: datetime
    tags: dict[str, str]

    @property
    def gate_verdict(self) -> str | None:
        return self.tags.get(f"{TAG}gate.verdict")

    @property
    def decided_at(self) -> datetime | None:
        decided = self.tags.get(f"{TAG}gate.decided_at")
        return datetime.fromisoformat(decided) if decided else None

    @property
    def serves_live(self) -> bool:
        """A challenger that may answer live rows: not refused by its gate, not retired."""
        return self.gate_verdict != "refused" and self.tags.get(RETIRED) != "true"

    @property
    def became_champion_at(self) -> datetime:
        """When it last took `champion` (promotion or rollback, per its audit tags), else when it was registered."""
        times = [self.tags.get(f"{AUDIT}{action}.at") for action in (Action.promoted, Action.rolled_back)]
        newest = max((time for time in times if time), default=None)
        return datetime.fromisoformat(newest) if newest else self.created_at


@dataclass
class ModelFacts:
    """One registered model as the registry holds it: identity, aliases and the versions the inventory shows."""

    name: str
    registry_id: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    newest: VersionFacts | None = None  # the last version registered: the last retrain
    held: dict[str, VersionFacts] = field(default_factory=dict)  # alias -> the version behind it
    champion_holdout: dict[str, float] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)  # the newest drift figures of its trend run

    @property
    def champion(self) -> VersionFacts | None:
        return self.held.get(CHAMPION)

    @property
    def challenger(self) -> VersionFacts | None:
        return self.held.get(CHALLENGER)


class FleetQueries:
    """Batched reads of one MLflow store for many registered models: a handful of calls, not one per model."""

    def __init__(self, cfg: DriftlineConfig):
        self._connection = Connection(cfg)
        self._client = self._connection.client

    def models(self, names: list[str], experiments: set[str]) -> dict[str, ModelFacts]:
        """Each named model that is registered, with its identity, aliases, alias holders, newest version, the
        champion's holdout metrics and its newest drift figures (runs searched in the named experiments only)."""
        wanted = set(names)
        found: dict[str, ModelFacts] = {}
        token = None
        while True:
            page = self._client.search_registered_models(max_results=MODELS_PER_PAGE, page_token=token)
            for registered in page:
                if registered.name in wanted:
                    aliases = {alias: str(version) for alias, version in (registered.aliases or {}).items()}
                    found[registered.name] = ModelFacts(registered.name, registered.tags.get(REGISTRY_ID), aliases)
            token = page.token
            if not token:
                break
        self._add_versions(found)
        experiment_ids = [id_ for name, id_ in self._experiment_ids().items() if name in experiments]
        self._add_champion_holdout(found, experiment_ids)
        self._add_drift(found, experiment_ids)
        return found

    def _add_versions(self, found: dict[str, ModelFacts]) -> None:
        for names in _chunks(sorted(found), NAMES_PER_QUERY):
            token = None
            while True:
                page = self._client.search_model_versions(
                    f"name IN ({_quoted(names)})", max_results=VERSIONS_PER_PAGE, page_token=token
                )
                for version in page:
                    facts = found[version.name]
                    held = VersionFacts(
                        str(version.version), version.run_id, _time(version.creation_timestamp), dict(version.tags)
                    )
                    if facts.newest is None or int(held.version) > int(facts.newest.version):
                        facts.newest = held
                    for alias, number in facts.aliases.items():
                        if number == held.version:
                            facts.held[alias] = held
                token = page.token
                if not token:
                    break

    def _experiment_ids(self) -> dict[str, str]:
        """Every experiment of the store: name -> id (runs are searched in all of a fleet's experiments at once)."""
        ids: dict[str, str] = {}
        token = None
        while True:
            page = self._client.search_experiments(max_results=EXPERIMENTS_PER_PAGE, page_token=token)
            ids |= {experiment.name: experiment.experiment_id for experiment in page}
            token = page.token
            if not token:
                break
        return ids

    def _runs(self, experiment_ids: list[str], query: str) -> list:
        runs: list = []
        token = None
        while experiment_ids:
            page = self._client.search_runs(
                experiment_ids, filter_string=query, max_results=RUNS_PER_PAGE, page_token=token
            )
            runs += page
            token = page.token
            if not token:
                break
        return runs

    def _add_champion_holdout(self, found: dict[str, ModelFacts], experiment_ids: list[str]) -> None:
        by_run = {facts.champion.run_id: facts for facts in found.values() if facts.champion}
        for run_ids in _chunks(sorted(by_run), NAMES_PER_QUERY):
            runs = self._runs(experiment_ids, f"attributes.run_id IN ({_quoted(run_ids)})")
            for run in runs:
                metrics = run.data.metrics
                by_run[run.info.run_id].champion_holdout = {
                    key[len(HOLDOUT) :]: value for key, value in metrics.items() if key.startswith(HOLDOUT)
                }

    def _add_drift(self, found: dict[str, ModelFacts], experiment_ids: list[str]) -> None:
        """The newest drift figures of each model's trend run (named after its model: one run per model)."""
        for run in self._runs(experiment_ids, f"tags.`{RUN_TYPE}` = '{TRENDS_RUN_TYPE}'"):
            model = (run.info.run_name or "").removeprefix(f"{TRENDS_RUN_TYPE}-")
            if model in found:  # one trend run per model, named after it
                found[model].drift = dict(run.data.metrics)

    def series(self, cfg: DriftlineConfig) -> tuple[Series, Series, Series]:
        """The model's served primary metric per labeled batch (its newest label run holds every batch, at each
        batch's data time), its drifted feature share and its drift alarms per monitoring run (at the data's time)."""
        client = self._client
        experiment = client.get_experiment_by_name(cfg.experiment_name)
        metric = cfg.primary_metric

        def history(run, key: str) -> list[tuple[datetime, float]]:
            if run is None:
                return []
            points = client.get_metric_history(run.info.run_id, key)
            return sorted((_time(point.timestamp), point.value) for point in points)

        performance = trends = None
        if experiment is not None:
            newest = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{RUN_TYPE}` = 'performance'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            performance = newest[0] if newest else None
            mine = f"tags.`{RUN_TYPE}` = '{TRENDS_RUN_TYPE}' AND attributes.run_name = {_quoted([trend_run_name(cfg)])}"
            found = client.search_runs([experiment.experiment_id], filter_string=mine, max_results=1)
            trends = found[0] if found else None
        return (
            Series(f"served {metric}", history(performance, metric_key(f"batch_{metric}"))),
            Series("drifted feature share", history(trends, "drifted_feature_share")),
            Series("drift alarm", history(trends, "dataset_drift")),
        )


def trend_run_name(cfg: DriftlineConfig) -> str:
    return f"{TRENDS_RUN_TYPE}-{cfg.registry.model_name}"


@dataclass(frozen=True)
class Series:
    """A figure over the data's time: (time, value) points in time order."""

    name: str
    points: list[tuple[datetime, float]]
