"""Label poisoning (issue 13): a batch whose labels break the task is quarantined before the archive by `run`,
`monitor` and `train` alike; a multiclass class the champion never saw passes only when the config allows it; the
loop keeps retraining; a removed batch leaves every future window, stays in quarantine, in the audit log and in the
lineage `driftline reproduce` follows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.configs import BAD_LABELS, TASK_KINDS, of_kind, write_config
from testkit.outcomes import expect
from testkit.paths import WEEK

from driftline.config import load_config
from driftline.data import archive
from driftline.data.demo import CONCEPT_DRIFT, START, make_frame
from driftline.errors import DataRejected
from driftline.flows.continuous_training import continuous_training
from driftline.flows.drift_monitoring import drift_monitoring
from driftline.flows.params import BatchParams, MonitorParams, TrainParams
from driftline.flows.training import training
from driftline.governance.reproduce import reproduce
from driftline.registry import Registry, registry_folders
from driftline.registry.audit_events import Action, Actor
from driftline.steps.archive_repair import remove_batch

FLOWS = ["run", "monitor", "train"]


def send(flow: str, config: Path, path: Path):
    if flow == "run":
        return continuous_training(BatchParams(config=str(config), data=str(path)))
    if flow == "monitor":
        return drift_monitoring(MonitorParams(config=str(config), data=str(path)))
    return training(TrainParams(config=str(config), data=[str(path)]))


def batch_file(
    folder: Path, name: str, kind: str, column: str | None = None, bad: object = None, rows: int = 200, seed: int = 2
) -> Path:
    """A week of new data of that kind, its first 10 labels replaced by `bad`."""
    frame = of_kind(make_frame(rows, seed=seed, start=START + 9 * WEEK, id_offset=10_000 * seed), kind)
    if column is not None:
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[:10], column] = bad
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def train_champion(folder: Path, kind: str, **sections) -> tuple[Path, list[Path]]:
    """A config of that kind in `folder` and its champion v1, trained by the training flow on two archived files."""
    config = write_config(folder, **TASK_KINDS[kind], **sections)
    files = [folder / "reference.csv", batch_file(folder, "extra.csv", kind, rows=300, seed=9)]
    of_kind(make_frame(600, seed=1, days=56), kind).to_csv(files[0], index=False)
    outcome = training(TrainParams(config=str(config), data=[str(path) for path in files], reason="champion"))
    assert outcome.verdict == "promoted" and outcome.champion_version == "1", outcome.reasons
    return config, files


@pytest.fixture(scope="module")
def champion_of(tmp_path_factory, prefect_api_url) -> Callable[[str], Path]:
    """One champion per kind of task, trained once for the module; its config path."""
    trained: dict[str, Path] = {}

    def champion(kind: str) -> Path:
        if kind not in trained:
            trained[kind], _ = train_champion(tmp_path_factory.mktemp(kind), kind)
        return trained[kind]

    return champion


# Every kind of bad label through run, monitor and train. The binary ones use the champion the default suite trains
# anyway (a rejected run takes seconds); the multiclass and regression champions are two more trainings (slow), and
# the default suite checks those kinds at the admission task (tests/reliability/test_bad_inputs.py).
MATRIX = [
    pytest.param(*case, flow, id=f"{case[0]} via {flow}", marks=() if case[1] == "binary" else pytest.mark.slow)
    for case in BAD_LABELS
    for flow in FLOWS
]


@pytest.mark.parametrize(("case", "kind", "column", "bad", "reason", "flow"), MATRIX)
def test_a_batch_with_bad_labels_is_quarantined_before_the_archive(champion_of, case, kind, column, bad, reason, flow):
    config = champion_of(kind)
    cfg = load_config(config)
    path = batch_file(config.parent, f"{kind}-{column}-{flow}-{len(case)}.csv", kind, column, bad)
    before = archive.read_archive_index(registry_folders(cfg).archive), Registry(cfg).versions()
    with pytest.raises(DataRejected) as rejected:
        send(flow, config, path)
    assert rejected.value.reasons == [reason]
    assert str(rejected.value).startswith(f"{path} rejected (quarantined to ")
    assert not path.exists() and (Path(rejected.value.quarantined_to) / path.name).is_file()
    assert (archive.read_archive_index(registry_folders(cfg).archive), Registry(cfg).versions()) == before


def test_a_removed_batch_leaves_the_window_stays_in_quarantine_audited_and_reproducible(champion_of):
    cfg = load_config(champion_of("binary"))
    [extra] = [e for e in archive.read_archive_index(registry_folders(cfg).archive) if e.source_name == "extra.csv"]
    removal = remove_batch(cfg, extra.fingerprint, "collected without consent", Actor("user", "ops"))
    assert removal.changed and "1" in removal.trained_versions  # and v2, if the poisoning test retrained first
    assert extra not in archive.retraining_window(registry_folders(cfg).archive, cfg.retraining, cfg.dataset)[0]
    kept = removal.entry.location(registry_folders(cfg).archive)
    assert kept.parent.parent == cfg.folders.quarantine and kept.is_file()
    assert "removed from the archive: collected without consent" in (kept.parent / "validation.json").read_text()
    [event] = [e for e in Registry(cfg).audit_log() if e.action is Action.archive_removed]
    assert (event.version, event.reason, str(event.actor)) == ("", "collected without consent", "user:ops")
    assert event.evidence["fingerprint"] == extra.fingerprint and event.evidence["source_name"] == "extra.csv"
    assert event.evidence["trained_versions"] == removal.trained_versions
    assert event.evidence["quarantined_to"] == str(kept)
    again = remove_batch(cfg, extra.fingerprint, "twice", Actor("user", "ops"))
    assert not again.changed and again.audit_run_id == event.run_id  # recorded once
    reproduced = reproduce(cfg, "1")
    assert not reproduced.missing and reproduced.matches


@pytest.mark.slow  # three flow runs that train or score on a fresh champion
def test_a_new_multiclass_class_passes_every_flow_when_the_config_allows_it(tmp_path, prefect_api_url):
    config, _ = train_champion(tmp_path, "multiclass", validation={"allow_new_classes": True}, drift={"retrain": False})
    cfg = load_config(config)
    for flow in ("run", "monitor"):
        path = batch_file(tmp_path, f"{flow}.csv", "multiclass", "contract", "lifetime", seed=3 if flow == "run" else 4)
        outcome = send(flow, config, path)
        assert (outcome.scoring.rows if flow == "run" else outcome.rows) == 200
    archived = {entry.source_name: entry for entry in archive.read_archive_index(registry_folders(cfg).archive)}
    assert {"run.csv", "monitor.csv"} <= set(archived)
    path = batch_file(tmp_path, "train.csv", "multiclass", "contract", "lifetime", rows=400, seed=5)
    trained = send("train", config, path)
    registry = Registry(cfg)
    learnt = registry.load_reference(registry.version_ref(trained.candidate_version)).trained_classes(cfg.dataset)
    assert sorted(learnt) == ["lifetime", "month-to-month", "one-year", "two-year"]


@pytest.mark.slow  # three flows and two trainings end to end: the quarantine itself is tested above
def test_label_poisoning_is_stopped_at_the_door_and_the_next_drift_retrain_succeeds(champion_of):
    """The incident: a batch with a third class in a binary target passed `run`, was archived, and every later
    drift-triggered retrain failed on it. Now it is rejected, and the loop goes on."""
    config = champion_of("binary")
    cfg, tmp_path = load_config(config), config.parent
    drifted = make_frame(1500, seed=4, start=START + 11 * WEEK, scenario=CONCEPT_DRIFT, id_offset=30_000)
    poisoned = tmp_path / "week-11-labels-v1.csv"
    drifted.assign(churned=drifted["churned"].where(drifted.index % 50 != 0, 2)).to_csv(poisoned, index=False)
    clean = tmp_path / "week-11.csv"
    drifted.to_csv(clean, index=False)
    try:
        continuous_training(BatchParams(config=str(config), data=str(poisoned)))
        door = "archived"
    except DataRejected as rejected:
        in_archive = any(
            e.source_name == poisoned.name for e in archive.read_archive_index(registry_folders(cfg).archive)
        )
        door = "archived" if in_archive else f"rejected ({rejected.reasons[0].split(';')[0]})"
    retraining = continuous_training(BatchParams(config=str(config), data=str(clean))).monitoring.retraining
    after = "no retrain" if retraining is None else f"the next drift retrain {retraining.verdict}"
    expect(
        case="label poisoning",
        expected="rejected (dataset.task is binary but target 'churned' has classes ['0', '1', '2']: ['2'] not "
        "among the champion's classes ['0', '1']); the next drift retrain promoted",
        observed=f"{door}; {after}",
    )
