"""The landing ledger: what each arrival became, deduplication on content handled (not merely seen), the landing
folder's state for `driftline status`, and failed content announced again."""

import os
import shutil
import time
from pathlib import Path

from testkit.outcomes import expect

from driftline.data.landing import LandingWatcher, complete_files
from driftline.data.ledger import FAILED, REJECTED, RUNNING, SUCCEEDED, Ledger, Outcome, landing_status
from driftline.errors import DataRejected, RegistryUnavailable
from driftline.registry import registry_folders
from driftline.steps import batch_outcomes


def drop(source: Path, landing: Path, name: str) -> Path:
    """Write-then-rename, as a producer does; a new mtime even for the same bytes (a file dropped again)."""
    landing.mkdir(parents=True, exist_ok=True)
    temporary = landing / f".{name}.part"
    shutil.copyfile(source, temporary)
    os.utime(temporary, ns=(time.time_ns(), time.time_ns()))
    return temporary.rename(landing / name)


def poll(watcher: LandingWatcher) -> dict[str, str | None]:
    """File name -> what it duplicates (None: announced as new data) for what this poll announced."""
    return {Path(a.path).name: a.duplicate_of for a in watcher.poll(lambda arrival: None, time.monotonic() + 10)}


def outcome(ledger: Ledger, name: str, state: str, run: str, reason: str | None = None) -> None:
    arrival = next(a for a in reversed(ledger.records) if getattr(a, "path", "").endswith(f"/{name}"))
    ledger.record(Outcome(arrival.sha256, state, arrival.path, run, reason))


def test_content_is_announced_again_after_a_failed_run_and_never_after_success_rejection_or_while_in_flight(
    tmp_path, demo_files
):
    landing = tmp_path / "landing"
    ledger = Ledger(tmp_path / "landing.jsonl")
    watcher = LandingWatcher(landing, ledger, stable_seconds=0)
    drop(demo_files["stable"], landing, "a.csv")
    drop(demo_files["covariate_shift"], landing, "b.csv")
    drop(demo_files["concept_drift"], landing, "c.csv")
    assert poll(watcher) == {"a.csv": None, "b.csv": None, "c.csv": None}
    outcome(ledger, "a.csv", RUNNING, "run-1")
    outcome(ledger, "a.csv", FAILED, "run-1", "MLflow tracking server http://127.0.0.1:5000 unavailable")
    outcome(ledger, "b.csv", REJECTED, "run-2", "quarantined to quarantine/2026…")
    outcome(ledger, "c.csv", RUNNING, "run-3")
    drop(demo_files["stable"], landing, "a.csv")
    drop(demo_files["covariate_shift"], landing, "b.csv")
    drop(demo_files["concept_drift"], landing, "c_copy.csv")
    again = poll(watcher)
    expect(
        case="a landed file whose run failed (server down) is dropped again",
        expected="announced as new data",
        observed="announced as new data" if again["a.csv"] is None else f"duplicate of {again['a.csv']}",
    )
    assert again["b.csv"].endswith("/b.csv") and again["c_copy.csv"].endswith("/c.csv")  # rejected; in flight
    outcome(ledger, "a.csv", SUCCEEDED, "run-4")
    drop(demo_files["stable"], landing, "a_later.csv")
    assert poll(watcher)["a_later.csv"].endswith("/a.csv")
    assert Ledger(ledger.path).state(ledger.records[0].sha256) == SUCCEEDED  # what a restarted watcher reads


def test_status_shows_pending_announced_running_failed_and_done(tmp_path, demo_files):
    landing = tmp_path / "landing"
    ledger = Ledger(tmp_path / "landing.jsonl")
    for name, source in [
        ("a.csv", "stable"),
        ("b.csv", "covariate_shift"),
        ("c.csv", "concept_drift"),
        ("d.csv", "faulty"),
        ("e.csv", "reference"),
    ]:
        drop(demo_files[source], landing, name)
    LandingWatcher(landing, ledger, stable_seconds=0).poll(lambda arrival: None, time.monotonic())
    outcome(ledger, "a.csv", SUCCEEDED, "run-1")
    outcome(ledger, "b.csv", RUNNING, "run-2")
    outcome(ledger, "c.csv", FAILED, "run-3", "connection refused")
    outcome(ledger, "d.csv", REJECTED, "run-4", "quarantined")
    drop(demo_files["stable"], landing, "new.csv")  # complete, not announced yet
    status = landing_status(ledger, complete_files(landing, 0, time.time()))
    assert [Path(p).name for p in status.pending] == ["new.csv"]
    assert [Path(p).name for p in status.announced] == ["e.csv"]
    assert [(Path(o.data).name, o.flow_run_id) for o in status.running] == [("b.csv", "run-2")]
    assert [(Path(o.data).name, o.reason, o.flow_run_id) for o in status.failed] == [
        ("c.csv", "connection refused", "run-3")
    ]
    assert (status.succeeded, status.rejected) == (1, 1)
    assert [Path(o.data).name for o in status.recent] == ["d.csv", "a.csv"]  # newest first


def test_retry_failed_announces_failed_content_again_and_names_files_gone(tmp_path, demo_files):
    landing = tmp_path / "landing"
    ledger = Ledger(tmp_path / "landing.jsonl")
    watcher = LandingWatcher(landing, ledger, stable_seconds=0)
    drop(demo_files["stable"], landing, "a.csv")
    drop(demo_files["covariate_shift"], landing, "b.csv")
    poll(watcher)
    outcome(ledger, "a.csv", FAILED, "run-1", "server down")
    outcome(ledger, "b.csv", FAILED, "run-2", "server down")
    (landing / "b.csv").unlink()
    sent = []
    announced, gone = watcher.retry_failed(sent.append)
    assert [Path(a.path).name for a in sent] == [Path(a.path).name for a in announced] == ["a.csv"]
    assert not announced[0].duplicate and [Path(p).name for p in gone] == ["b.csv"]
    assert ledger.state(announced[0].sha256) == "announced"
    assert watcher.retry_failed(sent.append)[0] == []  # announced once; not again until its run fails again


def test_a_run_s_outcome_goes_to_its_registry_s_ledger_and_rejection_for_content_is_not_a_failure(
    cfg, config_path, demo_files, monkeypatch
):
    ledger_path = registry_folders(cfg).landing_ledger
    data = str(demo_files["stable"])
    batch_outcomes.record_run(str(config_path), data, RUNNING, "run-1")
    batch_outcomes.record_run(
        str(config_path), data, FAILED, "run-1", DataRejected(data, ["3 rows: unknown plan"], "quarantine/x")
    )
    ledger = Ledger(ledger_path)
    assert [(o.state, o.flow_run_id) for o in ledger.records] == [(RUNNING, "run-1"), (REJECTED, "run-1")]
    assert ledger.records[-1].reason.endswith("rejected (quarantined to quarantine/x): 3 rows: unknown plan")

    # The registry down (often why a run fails): the failure still reaches the ledger where the content is in flight
    other = demo_files["covariate_shift"]
    batch_outcomes.record_run(str(config_path), str(other), RUNNING, "run-2")

    def down(cfg, connection=None):
        raise RegistryUnavailable("MLflow tracking server http://127.0.0.1:5000 unavailable: Connection refused")

    monkeypatch.setattr(batch_outcomes, "registry_folders", down)
    other.unlink()  # moved away meanwhile: the ledger knows the run's content
    batch_outcomes.record_run(str(config_path), str(other), FAILED, "run-2", RegistryUnavailable("server down"))
    latest = Ledger(ledger_path).records[-1]
    assert (latest.state, latest.flow_run_id, latest.reason) == (FAILED, "run-2", "server down")


def test_the_ledger_reads_lines_written_before_outcomes_were_recorded(tmp_path):
    path = tmp_path / "landing.jsonl"
    path.write_text(
        '{"path": "/l/a.csv", "size": 3, "sha256": "abc", "seen_at": "2026-01-01T00:00:00+00:00", '
        '"mtime_ns": 1, "duplicate_of": null}\n'
    )
    assert Ledger(path).state("abc") == "announced" and Ledger(path).handled_as("abc") == "/l/a.csv"
