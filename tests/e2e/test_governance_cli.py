"""The governance commands as a user calls them: audit, rollback, retire, reproduce; exit codes and one-line errors."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_audit_rollback_retire_and_reproduce_from_the_command_line(run_cli, config_path, demo_files):
    config = str(config_path)
    assert run_cli("train", "--config", config, "--data", str(demo_files["reference"])).returncode == 0
    refused = run_cli("train", "--config", config, "--data", str(demo_files["reference"]))
    assert refused.returncode == 4

    audit = json.loads(run_cli("audit", "--config", config, "--json").stdout)
    assert [(e["action"], e["version"]) for e in audit["events"]] == [
        ("registered", "1"),
        ("promoted", "1"),
        ("registered", "2"),
        ("refused", "2"),
    ]
    assert audit["events"][1]["actor"].startswith("flow-run:training/")
    at = run_cli("audit", "--config", config, "--at", audit["events"][1]["at"])
    assert at.returncode == 0 and at.stdout.startswith(f"champion at {audit['events'][1]['at']}: v1")

    no_previous = run_cli("rollback", "--config", config, "--reason", "test")
    assert no_previous.returncode == 1
    assert no_previous.stderr.strip().endswith("has no `previous` version to roll back to; name one: --to VERSION")
    champion = run_cli("retire", "--config", config, "--version", "1", "--reason", "old")
    assert champion.returncode == 1 and "v1 is the champion; roll back first" in champion.stderr
    retired = run_cli("retire", "--config", config, "--version", "2", "--reason", "never to serve")
    assert retired.returncode == 0 and retired.stdout.startswith("retired v2")
    status = json.loads(run_cli("status", "--config", config, "--json").stdout)
    assert [v["aliases"] for v in status["versions"]] == [["champion"], []]

    reproduced = run_cli("reproduce", "--config", config, "--version", "1")
    assert reproduced.returncode == 0, reproduced.stderr
    assert "v1 reproduced: every holdout metric within" in reproduced.stdout
