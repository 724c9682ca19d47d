"""`driftline deploy --config DIR` on a real Prefect server: every model's deployments, its work queue and the pool's
limits as the server reports them, spread schedules, broken and duplicate configs refused by name while the others
deploy, a removed config's model paused with its records and runs kept, the dry run, fleet pause and resume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, WorkPoolFilter, WorkPoolFilterName
from prefect.states import Completed, Running
from testkit.configs import write_config
from testkit.paths import PROJECT_ROOT

from driftline.cli.main import EXIT_CONFIG, main
from driftline.config import load_config
from driftline.fleet.schedules import spread_schedules
from driftline.flows.deploy import FLOWS, WORK_POOL_ENV
from driftline.flows.prefect_deployments import REMOVED_TAG


def _model(folder: Path, name: str, **sections) -> Path:
    path = write_config(folder, f"{name}.yaml")
    data = {key: value for key, value in yaml.safe_load(path.read_text()).items() if key != "storage"}
    path.write_text(yaml.safe_dump(data | {"registry": {"model_name": name}} | sections, sort_keys=False))
    return path


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fleet"
    folder.mkdir()
    limits = {"max_concurrent_runs": 5, "model_concurrent_runs": 2}
    (folder / "fleet.yaml").write_text(
        yaml.safe_dump({"storage": {"workspace": str(tmp_path / "shared")}, "fleet": limits})
    )
    for name in (f"{tmp_path.name[-12:]}-churn", f"{tmp_path.name[-12:]}-fraud"):
        _model(folder, name.lower().replace("_", "-"))
    return folder


def _deploy(folder: Path, pool: str, *extra: str) -> int:
    return main(["deploy", "--config", str(folder), "--pool", pool, "--project-dir", str(PROJECT_ROOT), *extra])


def _names(folder: Path) -> list[str]:
    return sorted(load_config(path).registry.model_name for path in folder.glob("*-*.yaml"))


def _deployments(pool: str, model: str | None = None) -> list:
    with get_client(sync_client=True) as client:
        return client.read_deployments(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[model])) if model else None,
        )


def _triggers_enabled(deployments: list) -> list[bool]:
    with get_client(sync_client=True) as client:
        return [
            automation.enabled
            for deployment in deployments
            for automation in client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
        ]


def test_a_fleet_deploys_every_model_with_its_queue_limit_the_pools_limit_and_its_slot_of_the_night(fleet_dir: Path):
    pool = f"fleet-{fleet_dir.parent.name[-10:]}"
    _model(fleet_dir, "broken", drift={"drift_sharee": 0.3})
    churn = next(fleet_dir.glob("*-churn.yaml"))
    for twin in ("twin-a.yaml", "twin-b.yaml"):
        _model(fleet_dir, twin.removesuffix(".yaml"), registry={"model_name": "twin"})
    assert _deploy(fleet_dir, pool) == EXIT_CONFIG  # the good models deployed; the command still fails

    names = [
        load_config(churn).registry.model_name,
        load_config(next(fleet_dir.glob("*-fraud.yaml"))).registry.model_name,
    ]
    deployed = [d for d in _deployments(pool) if d.name != "fleet"]  # the fleet's sla-check deployment aside
    assert sorted({d.name for d in deployed}) == sorted(names)  # neither broken nor twin
    assert len(deployed) == len(FLOWS) * 2
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(pool).concurrency_limit == 5
        queues = {q.name: q.concurrency_limit for q in client.read_work_queues(work_pool_name=pool)}
    assert all(queues[name] == 2 for name in names)
    assert {d.work_queue_name for d in deployed} == set(names)  # each model's runs go to its own queue
    cfg = load_config(churn)
    spread = spread_schedules(cfg)
    [scoring] = [d for d in _deployments(pool, cfg.registry.model_name) if d.entrypoint.endswith(":batch_scoring")]
    assert scoring.schedules[0].schedule.cron == spread.batch_scoring.cron
    assert cfg.folders.landing.is_dir()


def test_broken_and_duplicate_configs_are_named_on_stderr_with_file_and_line(fleet_dir: Path, capsys):
    broken = _model(fleet_dir, "broken", drift={"drift_sharee": 0.3})
    line = broken.read_text().splitlines().index("  drift_sharee: 0.3") + 1
    for twin in ("twin-a", "twin-b"):
        _model(fleet_dir, twin, registry={"model_name": "twin"})
    assert _deploy(fleet_dir, f"dry-{fleet_dir.parent.name[-10:]}", "--dry-run") == EXIT_CONFIG
    errors = capsys.readouterr().err
    assert f"not deployed: {broken}:{line}: drift.drift_sharee: unknown key" in " ".join(errors.split())
    assert "registry.model_name 'twin' is claimed by 2 configs" in errors
    assert "3 config(s) not deployed" in errors and "twin-a.yaml" in errors and "twin-b.yaml" in errors


@pytest.mark.slow
def test_a_config_removed_while_its_run_is_in_flight_pauses_its_model_and_the_run_finishes(
    fleet_dir: Path, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "400")  # the table's rows unwrapped
    pool = f"rm-{fleet_dir.parent.name[-10:]}"
    assert _deploy(fleet_dir, pool) == 0
    fraud_file = next(fleet_dir.glob("*-fraud.yaml"))
    fraud = load_config(fraud_file).registry.model_name
    [training] = [d for d in _deployments(pool, fraud) if d.entrypoint.endswith(":training")]
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(training.id)
        client.set_flow_run_state(run.id, Running(), force=True)

    fraud_file.unlink()
    capsys.readouterr()
    assert _deploy(fleet_dir, pool, "--dry-run") == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if f" {fraud} " in line]
    assert "pause" in row and f"config {fraud_file} removed: {len(FLOWS)} deployments paused, records kept" in row
    assert not any(d.paused for d in _deployments(pool, fraud))  # a dry run changes nothing

    assert _deploy(fleet_dir, pool) == 0
    kept = _deployments(pool, fraud)
    assert len(kept) == len(FLOWS) and all(d.paused and REMOVED_TAG in d.tags for d in kept)  # paused, not deleted
    assert _triggers_enabled(kept) == [False]  # the landing trigger: a paused deployment's would still fire
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run.id).state.is_running()  # pausing never touches a run in flight
        client.set_flow_run_state(run.id, Completed())  # and it finishes
        assert client.read_flow_run(run.id).state.is_completed()

    _model(fleet_dir, fraud_file.stem)  # the config is back: its model runs again
    assert _deploy(fleet_dir, pool) == 0
    back = _deployments(pool, fraud)
    assert not any(d.paused or REMOVED_TAG in d.tags for d in back) and _triggers_enabled(back) == [True]


@pytest.mark.slow
def test_the_dry_run_shows_changed_schedules_and_limits_against_the_server(fleet_dir: Path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # the table's rows unwrapped
    pool = f"plan-{fleet_dir.parent.name[-10:]}"
    assert _deploy(fleet_dir, pool) == 0
    churn_file = next(fleet_dir.glob("*-churn.yaml"))
    churn = load_config(churn_file)
    spread = spread_schedules(churn).batch_scoring.cron
    _model(
        fleet_dir,
        churn_file.stem,
        fleet={"model_concurrent_runs": 3},
        schedules={"batch_scoring": {"cron": "0 6 * * *"}},
    )
    capsys.readouterr()
    assert _deploy(fleet_dir, pool, "--dry-run") == 0
    out = capsys.readouterr().out
    [row] = [line for line in out.splitlines() if f" {churn.registry.model_name} " in line]
    assert "change" in row and f"batch-scoring '{spread}' UTC -> '0 6 * * *' UTC" in row
    assert "concurrent runs 2 -> 3" in out
    assert "work pool " + pool + ": 5 concurrent flow runs (unchanged)" in out
    with get_client(sync_client=True) as client:  # nothing changed
        assert client.read_work_queue_by_name(churn.registry.model_name, work_pool_name=pool).concurrency_limit == 2


@pytest.mark.slow
def test_fleet_pause_and_resume_stop_and_start_schedules_and_the_landing_trigger(fleet_dir: Path, capsys, monkeypatch):
    pool = f"pause-{fleet_dir.parent.name[-10:]}"
    monkeypatch.setenv(WORK_POOL_ENV, pool)
    assert _deploy(fleet_dir, pool) == 0
    churn, fraud = _names(fleet_dir)
    assert main(["fleet", "pause", "--config", str(fleet_dir), "--model", churn]) == 0
    assert f"{churn}: {len(FLOWS)} deployments paused (schedules and landing trigger)" in capsys.readouterr().out
    paused, running = _deployments(pool, churn), _deployments(pool, fraud)
    assert all(d.paused for d in paused) and _triggers_enabled(paused) == [False]
    assert not any(d.paused for d in running) and _triggers_enabled(running) == [True]
    assert _deploy(fleet_dir, pool) == 0  # deploying again keeps a paused model paused
    assert all(d.paused for d in _deployments(pool, churn)) and _triggers_enabled(_deployments(pool, churn)) == [False]
    assert main(["fleet", "resume", "--config", str(fleet_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{churn}: {len(FLOWS)} deployments resumed" in out and f"{fraud}: already running" in out
    assert not any(d.paused for d in _deployments(pool, fraud)) and _triggers_enabled(_deployments(pool, churn)) == [
        True
    ]


@pytest.mark.slow
def test_a_paused_models_landed_file_starts_no_run_while_a_running_models_does(fleet_dir: Path, monkeypatch):
    """Prefect 3.8 runs a paused deployment's trigger all the same: pausing a model pauses its trigger too."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.events import emit_event

    pool = f"land-{fleet_dir.parent.name[-10:]}"
    monkeypatch.setenv(WORK_POOL_ENV, pool)
    assert _deploy(fleet_dir, pool) == 0
    churn, fraud = _names(fleet_dir)
    assert main(["fleet", "pause", "--config", str(fleet_dir), "--model", churn]) == 0

    def runs(model: str) -> int:
        [landing] = [d for d in _deployments(pool, model) if d.entrypoint.endswith(":continuous_training")]
        with get_client(sync_client=True) as client:
            found = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[landing.id]))
            return len(client.read_flow_runs(flow_run_filter=found))

    for model in (churn, fraud):
        resource = {"prefect.resource.id": f"driftline.data.{model}", "driftline.model": model}
        emit_event(
            event="driftline.data.arrived",
            resource=resource | {"driftline.duplicate": "false", "driftline.path": f"/data/{model}.csv"},
        )
    deadline = time.monotonic() + 90
    while runs(fraud) == 0 and time.monotonic() < deadline:
        time.sleep(2)
    assert runs(fraud) == 1  # the running model's trigger fired: the event reached the server's triggers
    time.sleep(5)
    assert runs(churn) == 0
