"""Repairing the archive from the command line (issue 13): a retraining window poisoned before labels were checked
names the file the user sent and the fix; `archive list` shows it, `archive remove` takes it out, the loop trains
again, the removal is in the audit log."""

import json

import pytest

from driftline.config import load_config
from driftline.data import archive
from driftline.data.demo import make_frame
from driftline.data.loading import load_batch
from driftline.registry import registry_folders

pytestmark = pytest.mark.slow


def test_a_poisoned_archive_is_listed_and_repaired_from_the_command_line(run_cli, config_path, demo_files, tmp_path):
    config = str(config_path)
    assert run_cli("train", "--config", config, "--data", str(demo_files["reference"])).returncode == 0
    # How an archive looked after the incident: a third class archived unchecked (before labels were validated).
    cfg = load_config(config_path)
    poisoned = tmp_path / "week-07-late.csv"
    frame = make_frame(300, seed=7, id_offset=70_000)
    frame.assign(churned=frame["churned"].where(frame.index % 10 != 0, 2)).to_csv(poisoned, index=False)
    bad = archive.archive_batch(load_batch(poisoned, cfg.dataset), registry_folders(cfg).archive, cfg.dataset)

    blocked = run_cli("train", "--config", config, "--reason", "drift")
    assert blocked.returncode == 3
    [line] = blocked.stderr.strip().splitlines()
    assert line.startswith("driftline: retraining window of churn-demo rejected: batch week-07-late.csv (sha256 ")
    assert line.endswith(
        f"take it out of every future retraining window: driftline archive remove --config "
        f"{config} --fingerprint {bad.fingerprint} --reason TEXT"
    )

    listed = json.loads(run_cli("archive", "list", "--config", config, "--json").stdout)
    batches = {batch["source_name"]: batch for batch in listed["batches"]}
    assert set(batches) == {"reference.parquet", "week-07-late.csv"}
    assert batches["reference.parquet"]["archived_by"].startswith("flow-run:training/")
    assert batches["week-07-late.csv"]["rows"] == 300 and batches["week-07-late.csv"]["in_use"]

    unknown = run_cli("archive", "remove", "--config", config, "--fingerprint", "deadbeefdeadbeef", "--reason", "x")
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1
    assert "no archived batch has fingerprint deadbeefdeadbeef" in unknown.stderr
    removed = run_cli(
        "archive",
        "remove",
        "--config",
        config,
        "--fingerprint",
        bad.fingerprint[:12],
        "--reason",
        "third class in a binary target",
    )
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("removed week-07-late.csv")

    after = {
        b["source_name"]: b
        for b in json.loads(run_cli("archive", "list", "--config", config, "--json").stdout)["batches"]
    }
    assert not after["week-07-late.csv"]["in_use"]
    assert after["week-07-late.csv"]["removal_reason"] == "third class in a binary target"
    assert after["week-07-late.csv"]["file"].startswith(str(cfg.folders.quarantine))
    retrained = run_cli("train", "--config", config, "--reason", "drift")
    assert retrained.returncode in (0, 4), retrained.stderr  # trained and judged (the same data may be refused)
    audit = json.loads(run_cli("audit", "--config", config, "--json").stdout)
    [event] = [e for e in audit["events"] if e["action"] == "archive_removed"]
    assert event["evidence"]["source_name"] == "week-07-late.csv" and event["reason"].startswith("third class")
