"""One watcher for a folder of configs: each file landing is announced once, for its own model (its ledger, its
event naming its config); a config that does not load is reported by file and line while the others are watched;
a config added while watching is watched from the next poll."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from testkit.paths import DEMO_CONFIG
from testkit.waiting import wait_for

from driftline.config import load_config
from driftline.data.demo import START, make_frame
from driftline.data.ledger import Arrival, Ledger
from driftline.flows.watch import FleetWatch, keep_polling, watch, watch_fleet
from driftline.registry import registry_folders


def write_fleet(folder: Path, *models: str) -> Path:
    """A fleet folder: its fleet.yaml (one workspace under tmp, files complete at once) and the demo config per model."""
    folder.mkdir(parents=True, exist_ok=True)
    shared = {
        "storage": {"workspace": str(folder.parent / "workspace")},
        "landing": {"poll_seconds": 0.1, "stable_seconds": 0},
    }
    (folder / "fleet.yaml").write_text(yaml.safe_dump(shared))
    for model in models:
        add_model(folder, model)
    return folder


def add_model(folder: Path, model: str) -> Path:
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    del config["storage"]
    config["registry"] = {"model_name": model}
    path = folder / f"{model}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def land(folder: Path, name: str, seed: int) -> Path:
    """Write-then-rename into a landing folder, as a well-behaved producer does."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.part"
    make_frame(200, seed=seed, start=START, id_offset=seed * 1000).to_csv(partial, index=False)
    return partial.rename(folder / name)


def stored_arrivals(paths: list[Path]) -> list[dict]:
    """The driftline.data.arrived events the Prefect server stored for these files."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    query = EventFilter(
        event=EventNameFilter(name=["driftline.data.arrived"]),
        resource=EventResourceFilter(labels={"driftline.path": [str(path) for path in paths]}),
    )
    with get_client(sync_client=True) as client:
        return client.request("POST", "/events/filter", json={"filter": query.model_dump(mode="json")}).json()["events"]


def test_files_landing_in_two_models_folders_at_once_are_each_announced_once_for_their_own_model(tmp_path):
    folder = write_fleet(tmp_path / "fleet", "watch-churn-a", "watch-churn-b")
    configs = {name: load_config(folder / f"{name}.yaml") for name in ("watch-churn-a", "watch-churn-b")}
    landed = {
        name: land(cfg.folders.landing, f"{name}-week1.csv", seed) for seed, (name, cfg) in enumerate(configs.items())
    }
    announced: dict[str, list[str]] = defaultdict(list)

    def arrived(config: str, arrival: Arrival) -> None:
        announced[config].append(Path(arrival.path).name)

    watch_fleet(folder, once=True, on_arrival=arrived)
    watch_fleet(folder, once=True, on_arrival=arrived)  # a restarted watcher: nothing new

    assert dict(announced) == {
        str(folder / "watch-churn-a.yaml"): ["watch-churn-a-week1.csv"],
        str(folder / "watch-churn-b.yaml"): ["watch-churn-b-week1.csv"],
    }
    for name, cfg in configs.items():
        ledger = Ledger(registry_folders(cfg).landing_ledger)
        assert [Path(record.path).name for record in ledger.records] == [f"{name}-week1.csv"]
    events = wait_for(
        lambda: (found := stored_arrivals(list(landed.values()))) and len(found) >= 2 and found, 30, "both events"
    )
    by_model = {event["resource"]["driftline.model"]: event["resource"] for event in events}
    assert len(events) == 2 and set(by_model) == set(configs)
    for name, resource in by_model.items():
        assert resource["driftline.path"] == str(landed[name])
        assert resource["driftline.config"] == str(folder / f"{name}.yaml")
        assert resource["driftline.duplicate"] == "false"


def test_a_broken_config_is_reported_by_file_and_line_the_others_watched_and_a_new_config_joins_at_the_next_poll(
    tmp_path,
):
    folder = write_fleet(tmp_path / "fleet", "watch-plans-a")
    broken = add_model(folder, "watch-broken")
    broken.write_text(broken.read_text().replace("task: binary", "task: trinary"))
    line = broken.read_text().splitlines().index("  task: trinary") + 1
    problems: list[str] = []
    announced: list[tuple[str, str]] = []
    watched = FleetWatch(
        folder, lambda config, arrival: announced.append((config, Path(arrival.path).name)), problems.append
    )

    assert [model.cfg.registry.model_name for model in watched.models()] == ["watch-plans-a"]
    watched.models()  # the folder unchanged: not read again, the problem not reported again
    assert len(problems) == 1 and problems[0].startswith(f"{broken}:{line}: dataset.task:")

    added = add_model(folder, "watch-plans-b")
    land(load_config(added).folders.landing, "b-week1.csv", seed=3)
    keep_polling(watched.models, once=True)

    assert [model.cfg.registry.model_name for model in watched.models()] == ["watch-plans-a", "watch-plans-b"]
    assert announced == [(str(added), "b-week1.csv")]
    assert len(problems) == 1


@pytest.mark.slow  # 8 s on 2 cores: the default suite stays under 5 minutes
def test_a_single_config_is_still_watched_alone(config_factory):
    config_path = config_factory(landing={"poll_seconds": 0.1, "stable_seconds": 0})
    cfg = load_config(config_path)
    landed = land(cfg.folders.landing, "week1.csv", seed=5)
    announced: list[Arrival] = []
    watch(cfg, str(config_path), once=True, on_arrival=announced.append)
    assert [(a.path, a.duplicate) for a in announced] == [(str(landed), False)]
    [event] = wait_for(lambda: stored_arrivals([landed]), 30, "its event")
    assert event["resource"]["driftline.config"] == str(config_path)
