"""A column the config names for the gate (`gate.slices.columns`, `gate.fairness.attribute`) is declared: files
carrying it are accepted without listing it again under `dataset.passthrough_columns`."""

import numpy as np
import pytest
import yaml
from testkit.paths import DEMO_CONFIG

from driftline.config import load_config
from driftline.data.demo import make_frame
from driftline.validation.chunked import validate_file

WATCHED = {"slices": {"columns": ["segment"]}, "fairness": {"attribute": "race"}}


def batch_file(tmp_path, **extra_columns):
    frame = make_frame(300, seed=5, id_offset=70_000)
    rng = np.random.default_rng(5)
    for name, values in extra_columns.items():
        frame[name] = rng.choice(values, len(frame))
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    return path


def test_the_declared_columns_are_the_dataset_roles_the_gate_s_watched_columns_and_the_passthrough_ones(
    config_factory,
):
    dataset = yaml.safe_load(DEMO_CONFIG.read_text())["dataset"]
    cfg = load_config(config_factory(gate=WATCHED, dataset={**dataset, "passthrough_columns": ["note", "race"]}))
    assert cfg.declared_columns == [
        *dataset["features"],
        "churned",
        "customer_id",
        "event_time",
        "segment",
        "race",
        "note",
    ]


def test_a_batch_carrying_the_fairness_attribute_and_a_slice_column_is_accepted_without_passthrough(
    config_factory, tmp_path
):
    cfg = load_config(config_factory(gate=WATCHED))
    path = batch_file(tmp_path, race=["a", "b", "c"], segment=["retail", "business"])
    source, report = validate_file(path, cfg, None, for_training=True)
    assert report.success, report.failures
    assert source.rows == 300
    assert {"race", "segment"} <= set(source.columns)


def test_listing_a_watched_column_in_passthrough_columns_as_well_stays_accepted(config_factory, tmp_path):
    dataset = yaml.safe_load(DEMO_CONFIG.read_text())["dataset"]
    cfg = load_config(config_factory(gate=WATCHED, dataset={**dataset, "passthrough_columns": ["race"]}))
    _, report = validate_file(batch_file(tmp_path, race=["a", "b"]), cfg, None, for_training=False)
    assert report.success, report.failures


@pytest.mark.parametrize("gate", [{}, WATCHED])
def test_a_column_no_section_names_still_rejects_the_file_with_one_line(config_factory, tmp_path, gate):
    cfg = load_config(config_factory(gate=gate))
    path = batch_file(tmp_path, race=["a", "b"], segment=["retail"], internal_note=["x"])
    _, report = validate_file(path, cfg, None, for_training=False)
    unknown = ["internal_note"] if gate else ["internal_note", "race", "segment"]
    assert report.failures == [
        f"columns {unknown} are not in the config: expected only the declared columns; drop them or list them "
        "under dataset.passthrough_columns"
    ]
