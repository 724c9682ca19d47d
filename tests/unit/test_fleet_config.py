"""A fleet is a folder of model configs over its fleet.yaml: merged key by key, broken ones set aside by file and line,
one registered model per config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from testkit.configs import write_config

from driftline.cli.main import EXIT_CONFIG, main
from driftline.config import load_config, load_fleet
from driftline.errors import ConfigError


def _model(folder: Path, name: str, **sections) -> Path:
    """The demo config as `<name>.yaml` in `folder`: no storage or drift section of its own (the fleet file's
    apply) unless given; each given section replaces the demo's."""
    path = write_config(folder, f"{name}.yaml")
    data = {key: value for key, value in yaml.safe_load(path.read_text()).items() if key not in ("storage", "drift")}
    data["registry"] = {"model_name": name}
    path.write_text(yaml.safe_dump(data | sections, sort_keys=False))
    return path


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fleet"
    folder.mkdir()
    (folder / "fleet.yaml").write_text(
        yaml.safe_dump(
            {
                "storage": {"workspace": str(tmp_path / "shared")},
                "fleet": {"max_concurrent_runs": 6},
                "serving": {"port": 9001, "max_loaded_models": 3},
                "drift": {"drift_share": 0.4, "retrain": False},
            }
        )
    )
    _model(folder, "churn")
    _model(folder, "fraud", drift={"drift_share": 0.2})
    return folder


def test_a_model_config_wins_over_the_fleet_defaults_key_by_key(fleet_dir: Path, tmp_path: Path):
    fraud = load_config(fleet_dir / "fraud.yaml")
    assert fraud.drift.drift_share == 0.2  # its own
    assert fraud.drift.retrain is False  # the fleet's, beside it in the same section
    assert fraud.serving.port == 9001 and fraud.serving.max_loaded_models == 3
    assert fraud.folders.root == (tmp_path / "shared").resolve()
    assert "over the fleet defaults" in fraud.source_text  # a version records the config it ran with
    assert yaml.safe_load(fraud.source_text)["drift"] == yaml.safe_load(fraud.source_text)["drift"] | {
        "drift_share": 0.2
    }


def test_config_show_prints_the_merged_config(fleet_dir: Path, capsys):
    assert main(["config", "show", "--config", str(fleet_dir / "churn.yaml")]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["drift"]["drift_share"] == 0.4
    assert shown["fleet"]["max_concurrent_runs"] == 6
    assert shown["fleet"]["failing_runs"] == 3  # the defaults are filled in


def test_a_broken_config_is_set_aside_by_file_and_line_and_the_others_load(fleet_dir: Path):
    broken = _model(fleet_dir, "broken", drift={"drift_share": 7})
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if "drift_share" in text)
    fleet = load_fleet(fleet_dir)
    assert fleet.names == ["churn", "fraud"]
    [aside] = fleet.broken
    assert aside.path == broken
    assert aside.problem.startswith(f"{broken}:{line}: drift.drift_share: Input should be less than or equal to 1")


def test_a_field_from_the_fleet_file_is_named_there(fleet_dir: Path):
    (fleet_dir / "fleet.yaml").write_text("storage:\n  workspace: /tmp/x\nfleet:\n  failing_runs: 0\n")
    with pytest.raises(ConfigError, match=r"churn\.yaml \(from .*fleet\.yaml:4\): fleet\.failing_runs"):
        load_config(fleet_dir / "churn.yaml")


def test_two_configs_naming_the_same_registered_model_are_both_refused(fleet_dir: Path):
    twin = _model(fleet_dir, "twin", registry={"model_name": "churn"})
    fleet = load_fleet(fleet_dir)
    assert fleet.names == ["fraud"]
    assert [b.path.name for b in fleet.broken] == ["churn.yaml", "twin.yaml"]
    assert all("registry.model_name 'churn' is claimed by 2 configs" in b.problem for b in fleet.broken)
    assert str(twin) in fleet.broken[0].problem


def test_an_unknown_section_in_the_fleet_file_fails_the_fleet_naming_its_line(fleet_dir: Path):
    (fleet_dir / "fleet.yaml").write_text("storage:\n  workspace: /tmp/x\nflet:\n  failing_runs: 2\n")
    with pytest.raises(ConfigError, match=r"fleet\.yaml:3: flet: unknown section"):
        load_fleet(fleet_dir)


def test_models_of_one_fleet_share_one_workspace(fleet_dir: Path, tmp_path: Path):
    _model(fleet_dir, "elsewhere", storage={"workspace": str(tmp_path / "other")})
    with pytest.raises(ConfigError, match=r"elsewhere\.yaml: storage\.workspace .* set storage\.workspace in fleet"):
        _ = load_fleet(fleet_dir).workspace


def test_a_command_for_one_model_given_the_folder_says_to_name_a_config(fleet_dir: Path, capsys):
    assert main(["status", "--config", str(fleet_dir)]) == EXIT_CONFIG
    assert (
        f"{fleet_dir}: a folder of configs (a fleet); this command takes one model's config" in capsys.readouterr().err
    )


def test_an_unknown_model_is_refused_naming_the_fleet_s_models(fleet_dir: Path):
    with pytest.raises(ConfigError, match=r"no model 'churm' in this fleet; its models: churn, fraud"):
        load_fleet(fleet_dir).only(["churm"])


def test_a_config_removed_while_its_run_is_in_flight_is_still_the_run_s_config(fleet_dir: Path):
    started_with = load_config(fleet_dir / "fraud.yaml")
    (fleet_dir / "fraud.yaml").unlink()  # `driftline deploy` will pause the model; this run goes on
    assert load_config(fleet_dir / "fraud.yaml").drift.drift_share == started_with.drift.drift_share == 0.2
    assert load_fleet(fleet_dir).names == ["churn"]  # the fleet no longer has it
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(fleet_dir / "never-read.yaml")
