"""One workspace, one registry identity: the local state of a model lives under its registry's identity, the same
through every URI of one store, another for another store; state from before identities is adopted once."""

import json
import logging
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from driftline.config import load_config
from driftline.config.workspace import short_id
from driftline.errors import ConfigError
from driftline.registry import REGISTRY_ID, Registry
from driftline.registry.identity import forget_identity


def config_with(config_path: Path, name: str, **sections) -> Path:
    """The test's config with some sections replaced, written beside it."""
    data = yaml.safe_load(config_path.read_text()) | sections
    path = config_path.with_name(name)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_two_uris_of_one_store_share_the_identity_and_another_store_has_its_own(config_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store.db"
    relative = load_config(
        config_with(
            config_path, "relative.yaml", registry={"model_name": "churn", "tracking_uri": "sqlite:///store.db"}
        )
    )
    absolute = load_config(
        config_with(
            config_path, "absolute.yaml", registry={"model_name": "churn", "tracking_uri": f"sqlite:///{store}"}
        )
    )
    other = load_config(
        config_with(
            config_path,
            "other.yaml",
            registry={"model_name": "churn", "tracking_uri": f"sqlite:///{tmp_path / 'other.db'}"},
        )
    )

    first = Registry(relative).folders
    assert Registry(absolute).folders == first  # a second URI of the same file: the same identity, the same folders
    assert (
        MlflowClient(f"sqlite:///{store}", f"sqlite:///{store}").get_registered_model("churn").tags[REGISTRY_ID]
        == first.registry_id
    )
    elsewhere = Registry(other).folders
    assert elsewhere.registry_id != first.registry_id and elsewhere.root != first.root

    workspace = relative.folders.root
    assert first.root == workspace / "registries" / f"churn-{short_id(first.registry_id)}"
    assert (first.archive, first.cache, first.landing_ledger) == (
        first.root / "archive",
        first.root / "cache",
        first.root / "landing.jsonl",
    )
    marker = json.loads((first.root / "registry.json").read_text())
    assert marker["registry_id"] == first.registry_id and marker["model"] == "churn"
    assert marker["tracking_uri"] == "sqlite:///store.db"  # the URI it was created with


def test_a_named_archive_refuses_a_second_registry_with_both_named_and_the_fix(config_path, tmp_path):
    named = {"workspace": str(tmp_path / "workspace"), "archive_dir": str(tmp_path / "shared-archive")}
    ours = load_config(config_with(config_path, "ours.yaml", storage=named))
    theirs = load_config(
        config_with(
            config_path,
            "theirs.yaml",
            storage=named,
            registry={"model_name": "churn-demo", "tracking_uri": f"sqlite:///{tmp_path / 'theirs.db'}"},
        )
    )
    folders = Registry(ours).folders
    assert folders.archive == tmp_path / "shared-archive" and (folders.archive / "registry.json").is_file()
    with pytest.raises(ConfigError) as refused:
        Registry(theirs).folders.archive  # noqa: B018 - the lookup is what refuses
    expected = (
        f"{theirs.source}: storage.archive_dir {tmp_path / 'shared-archive'} holds the archive of model 'churn-demo' "
        f"in registry {short_id(folders.registry_id)} ({ours.tracking_uri}), not of registry "
    )
    message = str(refused.value)
    assert message.startswith(expected) and "\n" not in message
    assert message.endswith(
        f"point storage.archive_dir at a folder of its own for this registry, or "
        f"registry.tracking_uri back at {ours.tracking_uri}"
    )


def register_without_identity(cfg) -> None:
    """A version registered as driftline did before identities: the registered model carries no identity tag."""
    client = MlflowClient(cfg.tracking_uri, cfg.tracking_uri)
    client.create_registered_model(cfg.registry.model_name)
    client.create_model_version(cfg.registry.model_name, source=(cfg.folders.root / "old-model").as_uri())


def legacy_state(cfg) -> dict[str, Path]:
    """State where it lived before identities, keyed by the model name alone."""
    root, name = cfg.folders.root, cfg.registry.model_name
    legacy = {
        "archive": root / "archive" / name / "index.jsonl",
        "prediction_log": root / "predictions" / name / "log.parquet",
        "label_store": root / "label-store" / name / "labels.parquet",
        "landing_ledger": root / "ledgers" / f"{name}-landing.jsonl",
    }
    for path in legacy.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("kept\n")
    return legacy


def test_a_registry_with_versions_adopts_the_state_it_had_before_identities(cfg, caplog):
    register_without_identity(cfg)
    legacy = legacy_state(cfg)
    with caplog.at_level(logging.WARNING, logger="driftline.registry"):
        folders = Registry(cfg).folders
    assert (folders.archive / "index.jsonl").read_text() == "kept\n"
    assert (folders.prediction_log / "log.parquet").is_file() and (folders.label_store / "labels.parquet").is_file()
    assert folders.landing_ledger.read_text() == "kept\n"
    assert not any(path.exists() for path in legacy.values())
    assert len([r for r in caplog.records if "adopted" in r.getMessage()]) == 4
    # the identity is now a tag: the next process finds it, and adopts nothing again
    forget_identity(cfg)
    assert Registry(cfg).folders == folders


def test_a_new_registry_starts_fresh_and_leaves_a_workspace_s_old_state_alone(cfg):
    legacy = legacy_state(cfg)
    folders = Registry(cfg).folders  # no versions: nothing of the old state is its own
    assert not folders.archive.exists() and not folders.landing_ledger.exists()
    assert all(path.exists() for path in legacy.values())
