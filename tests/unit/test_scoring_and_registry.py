import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
import yaml
from testkit.outcomes import expect

from driftline.config import load_config
from driftline.data import archive, loading
from driftline.errors import DriftlineError, ModelTampered, NoChampion
from driftline.evaluation.gate import decide
from driftline.monitoring import drift
from driftline.registry import CHALLENGER, CHAMPION, MODEL_SHA256, PREVIOUS, SKOPS_FILE, Registry, registry_folders
from driftline.registry.artifacts import model_sha256
from driftline.serving import batch_scoring
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model


@pytest.fixture
def reference(cfg, demo_files):
    return loading.load_batch(demo_files["reference"], cfg.dataset)


def register(cfg, batch, trigger="test"):
    trained = train_model(batch.frame, cfg)
    source = DataSource(batch.fingerprint, batch.rows, batch.name, batch.path.name)
    return trained, Registry(cfg).log_candidate(trained, collect_lineage(cfg, [source]), trigger)


def test_scoring_output_has_ids_predictions_probabilities_version_and_time(cfg, reference, tmp_path):
    trained = train_model(reference.frame, cfg)
    batch = reference.frame.head(50)
    scored, _ = batch_scoring.score_frame(trained.model, batch, cfg, "7")
    assert list(scored.columns) == ["customer_id", "prediction", "proba_0", "proba_1", "model_version", "scored_at"]
    assert scored["customer_id"].tolist() == batch["customer_id"].tolist()
    assert np.allclose(scored["proba_0"] + scored["proba_1"], 1)
    assert set(scored["model_version"]) == {"7"}
    written = batch_scoring.write_output(scored, tmp_path / "out" / "scores.csv")
    assert len(pd.read_csv(written)) == 50
    with pytest.raises(DriftlineError, match="unsupported suffix '.json'"):
        batch_scoring.write_output(scored, tmp_path / "scores.json")


def flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(content))


def load_outcome(registry: Registry, ref) -> str:
    try:
        registry.load_model(ref)  # every load: scoring, monitoring, serving, the gate's champion
    except ModelTampered as refused:
        return "refused: registry's artifact changed" if "the registry's artifact" in str(refused) else str(refused)
    return "loaded"


def test_registered_version_is_challenger_with_lineage_and_loads_with_skops_only_while_unchanged(cfg, reference):
    trained, ref = register(cfg, reference, trigger="initial training")
    registry = Registry(cfg)
    assert registry.alias(CHALLENGER) == ref and registry.champion() is None
    info = registry.versions()[0]
    assert info.aliases == [CHALLENGER]
    assert info.to_dict()["data_fingerprints"] == [reference.fingerprint]
    described = info.to_dict()
    assert described["training_rows"] == reference.rows
    assert described["data"] == [{"fingerprint": reference.fingerprint, "rows": reference.rows}]
    assert described["packages"]["scikit-learn"] == sklearn.__version__
    assert described["run_id"] == ref.run_id and described["seed"] == "42"
    assert info.tags["driftline.trigger"] == "initial training"
    assert info.metrics["roc_auc"] == pytest.approx(trained.metrics["roc_auc"])
    loaded = registry.load_model(ref)
    features = trained.holdout.head(100)
    assert np.array_equal(
        loaded.predict_proba(features[cfg.dataset.feature_names]),
        trained.model.predict_proba(features[cfg.dataset.feature_names]),
    )
    cached = registry.folders.cache / f"model-{ref.name}-v{ref.version}"
    mlmodel = (cached / "MLmodel").read_text()
    assert "serialization_format: skops" in mlmodel
    assert '{"type": "string", "name": "contract", "required": true}' in mlmodel  # typed by the config

    # The checksum recorded at registration is verified before skops reads a byte: a changed copy in the local
    # cache is stale and fetched again; a changed artifact in the registry's store is refused.
    recorded = registry.version_tags(ref.version)[MODEL_SHA256]
    flip_a_byte(cached / SKOPS_FILE)
    expect(case="model file changed in the local cache", expected="loaded", observed=load_outcome(registry, ref))
    assert model_sha256(cached) == recorded  # the stale copy was replaced by the registry's
    [stored] = (cfg.folders.root / "mlartifacts").rglob(SKOPS_FILE)
    flip_a_byte(stored)
    shutil.rmtree(cached)  # the next load downloads again, from the artifact store
    expect(
        case="model file changed in the artifact store",
        expected="refused: registry's artifact changed",
        observed=load_outcome(registry, ref),
    )
    with pytest.raises(ModelTampered) as refused:
        registry.load_model(ref)
    assert f"has sha256 {model_sha256(stored.parent)[:12]}…, its registration recorded {recorded[:12]}…" in str(
        refused.value
    )
    assert "mlartifacts" in str(refused.value) and str(registry.folders.cache) not in str(refused.value)
    flip_a_byte(stored)  # the same byte back: the registered bytes load again
    expect(case="model file restored", expected="loaded", observed=load_outcome(registry, ref))


def test_another_registrys_version_in_the_cache_is_fetched_again_not_refused(config_factory, reference, tmp_path):
    """What broke `make demo` then `make up`: the other store's v1 sat in the cache under this model's v1."""
    cfg = load_config(config_factory())
    other_store = yaml.safe_load(cfg.source.read_text()) | {"storage": {"workspace": str(tmp_path / "other")}}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other_store))
    other = load_config(tmp_path / "other.yaml")
    trained, ours = register(cfg, reference)
    source = DataSource(reference.fingerprint, 1500, reference.name, reference.path.name)
    theirs = Registry(other).log_candidate(
        train_model(reference.frame.head(1500), other), collect_lineage(other, [source]), "another store"
    )
    assert (theirs.name, theirs.version) == (ours.name, ours.version)
    assert Registry(other).folders.registry_id != Registry(cfg).folders.registry_id
    Registry(other).load_model(theirs)
    stale = Registry(cfg).folders.cache / f"model-{ours.name}-v1"
    shutil.copytree(Registry(other).folders.cache / f"model-{theirs.name}-v1", stale)
    features = trained.holdout[cfg.dataset.feature_names].head(100)
    loaded = Registry(cfg).load_model(ours)
    same = np.array_equal(loaded.predict_proba(features), trained.model.predict_proba(features))
    expect(
        case="another registry's v1 in the model cache (stale entry)",
        expected="fetched again, loaded",
        observed="fetched again, loaded" if same else "loaded the other registry's model",
    )


def test_promotion_moves_champion_and_previous_and_records_the_gate(cfg, reference):
    registry = Registry(cfg)
    with pytest.raises(NoChampion, match="has no champion yet"):
        registry.require_champion()
    _, first = register(cfg, reference)
    registry.record_gate(first, decide(cfg, {"roc_auc": 0.8}, None, None))
    registry.promote(first)
    _, second = register(cfg, reference)
    registry.promote(second)
    assert registry.champion().version == second.version
    assert registry.alias(PREVIOUS).version == first.version
    assert registry.alias(CHALLENGER) is None
    by_version = {v.version: v for v in registry.versions()}
    assert by_version[first.version].aliases == [PREVIOUS]
    assert by_version[second.version].aliases == [CHAMPION]
    assert by_version[first.version].gate_verdict == "promoted"


def test_a_challenger_its_gate_refused_never_answers_live_rows(cfg, reference):
    registry = Registry(cfg)
    _, first = register(cfg, reference)
    assert registry.live_challenger() == first  # not judged yet: may be shadowed or served as a canary
    registry.record_gate(first, decide(cfg, {"roc_auc": 0.01}, None, None))
    assert registry.alias(CHALLENGER) == first and registry.live_challenger() is None


def test_models_needing_unreviewed_types_are_not_stored(config_factory, reference):
    cfg = load_config(config_factory(model={"estimator": "sklearn.neighbors.KNeighborsClassifier", "params": {}}))
    with pytest.raises(
        DriftlineError, match="skops needs types nobody reviewed: .*list them under model.trusted_types"
    ):
        register(cfg, reference)


def test_resetting_one_model_leaves_others_in_the_shared_workspace(cfg, reference):
    from driftline.cli.loop import reset_model

    other = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"model_name": "other-model"})})
    register(cfg, reference)
    register(other, reference)
    forgotten = registry_folders(cfg)
    archive.archive_batch(reference, forgotten.archive, cfg.dataset)
    archive.archive_batch(reference, registry_folders(other).archive, other.dataset)
    reset_model(cfg)
    assert Registry(cfg).versions() == [] and not forgotten.root.exists()
    assert [v.version for v in Registry(other).versions()] == ["1"]
    assert len(archive.read_archive_index(registry_folders(other).archive)) == 1


def test_champion_trained_on_other_features_is_refused_with_the_fix(cfg, reference):
    from driftline.config import DatasetConfig, FeatureType
    from driftline.errors import ConfigError
    from driftline.registry import metric_key

    _, first = register(cfg, reference)
    Registry(cfg).promote(first)
    features = {**cfg.dataset.features, "loyalty_points": FeatureType.numeric}
    changed = cfg.model_copy(update={"dataset": DatasetConfig(**{**cfg.dataset.model_dump(), "features": features})})
    with pytest.raises(ConfigError, match=r"differ from champion v1's \(added \['loyalty_points'\], removed \[\]\)"):
        Registry(changed).load_champion()
    assert metric_key("drift_feature_monthly charges ($)") == "drift_feature_monthly charges (_)".replace(
        "(", "_"
    ).replace(")", "_")


def test_registered_version_carries_drift_stats_of_every_training_row(config_factory, reference, demo_files):
    import shutil

    cfg = load_config(config_factory(drift={"reference_sample_rows": 100}))
    trained, ref = register(cfg, reference)
    loaded = Registry(cfg).load_reference(ref)
    training_rows = round(reference.rows * (1 - cfg.model.holdout.fraction))
    assert loaded.stats.rows == training_rows and len(loaded.features) == 100
    assert set(loaded.stats.columns) == {*cfg.dataset.feature_names, cfg.dataset.target}
    assert loaded.stats.prediction.rows == len(trained.holdout)
    batch = loading.load_batch(demo_files["covariate_shift"], cfg.dataset).frame
    signal = np.linspace(0, 1, len(batch))
    expected = drift.detect_drift(trained.reference.stats, batch, cfg, current_predictions=signal)
    assert drift.detect_drift(loaded.stats, batch, cfg, current_predictions=signal) == expected
    assert expected.detected and expected.reference_rows == training_rows
    # a version registered before reference/stats/ existed: the statistics come from its stored sample
    stats_folder = next((registry_folders(cfg).cache).glob(f"reference-{ref.run_id}/**/stats"))
    shutil.rmtree(stats_folder)
    old = Registry(cfg).load_reference(ref)
    assert old.stats.rows == 100
    assert drift.detect_drift(old.stats, batch, cfg) == drift.detect_drift(old.features, batch, cfg)
