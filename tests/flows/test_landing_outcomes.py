"""No batch is lost on the event path: the continuous-training flow's state hooks record each landed file's outcome,
a run that failed for a reason other than its content is processed when the file is dropped again, and a file
rejected for its content is not."""

import time
from pathlib import Path

import pytest
from testkit.outcomes import expect

from driftline.config import load_config
from driftline.data.ledger import FAILED, REJECTED, RUNNING, SUCCEEDED, Ledger
from driftline.errors import DataRejected, PathNotAllowed
from driftline.flows.continuous_training import continuous_training
from driftline.flows.params import BatchParams, TrainParams
from driftline.flows.training import training
from driftline.flows.watch import landing_watcher
from driftline.registry import registry_folders


def drop(source: Path, landing: Path, name: str) -> Path:
    landing.mkdir(parents=True, exist_ok=True)
    (landing / f".{name}.part").write_bytes(source.read_bytes())
    return (landing / f".{name}.part").rename(landing / name)


def announced_as_new(cfg) -> list[str]:
    arrivals = landing_watcher(cfg).poll(lambda arrival: None, time.monotonic() + 10)
    return [Path(a.path).name for a in arrivals if not a.duplicate]


def states(cfg, sha256: str) -> list[tuple[str, str]]:
    return [
        (o.state, o.flow_run_id)
        for o in Ledger(registry_folders(cfg).landing_ledger).of_content(sha256)
        if hasattr(o, "state")
    ]


@pytest.mark.slow  # three runs: ~20 s
def test_a_failed_run_is_processed_when_its_file_is_dropped_again_and_a_rejected_file_is_not(
    config_factory, demo_files, tmp_path
):
    config_path = config_factory(landing={"stable_seconds": 0})
    cfg = load_config(config_path)
    training(TrainParams(config=str(config_path), data=[str(demo_files["reference"])], reason="initial"))
    landing = cfg.folders.landing
    landed = drop(demo_files["stable"], landing, "stable.csv")
    assert announced_as_new(cfg) == ["stable.csv"]

    # fails after archiving, for a reason that is not the file's (here: an output nobody may write)
    with pytest.raises(PathNotAllowed):
        continuous_training(
            BatchParams(config=str(config_path), data=str(landed), output=str(tmp_path.parent / "elsewhere.parquet"))
        )
    sha256 = Ledger(registry_folders(cfg).landing_ledger).records[0].sha256
    [(_, failed_run), (failed, _)] = states(cfg, sha256)
    assert failed == FAILED
    [failure] = [o for o in Ledger(registry_folders(cfg).landing_ledger).records if getattr(o, "state", "") == FAILED]
    assert "outside the allowed folders" in failure.reason and failure.flow_run_id == failed_run

    drop(demo_files["stable"], landing, "stable.csv")  # dropped again: new data, and this time it is processed
    assert announced_as_new(cfg) == ["stable.csv"]
    summary = continuous_training(BatchParams(config=str(config_path), data=str(landed)))
    expect(
        case="a landed file whose run failed after archiving is run again",
        expected="processed, scored by v1",
        observed=f"duplicate of {summary.duplicate_of}"
        if summary.duplicate_of
        else f"processed, scored by v{summary.scoring.model_version}",
    )
    assert [state for state, _ in states(cfg, sha256)] == [RUNNING, FAILED, RUNNING, SUCCEEDED]
    drop(demo_files["stable"], landing, "stable_copy.csv")
    assert announced_as_new(cfg) == []  # processed now: a copy is a duplicate

    faulty = drop(demo_files["faulty"], landing, "faulty.csv")
    assert announced_as_new(cfg) == ["faulty.csv"]
    with pytest.raises(DataRejected):
        continuous_training(BatchParams(config=str(config_path), data=str(faulty)))
    assert not faulty.exists()  # quarantined
    drop(demo_files["faulty"], landing, "faulty.csv")
    assert announced_as_new(cfg) == []  # rejected for its own content: sending it again changes nothing
    rejected = Ledger(registry_folders(cfg).landing_ledger).records[-2]
    assert rejected.state == REJECTED and "quarantined to" in rejected.reason
