"""The label rules (issue 13): one verdict on a labeled batch's target, whether it is a new batch, training data, the
retraining window or a label file; and the archive's repair as a library: list, remove, the window without it."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from testkit.configs import TASK_KINDS, of_kind

from driftline.config import Task, load_config
from driftline.data import archive
from driftline.data.demo import make_frame
from driftline.data.loading import load_batch
from driftline.errors import DataRejected, DriftlineError
from driftline.registry import registry_folders
from driftline.steps.retraining import retraining_window
from driftline.training.train import train_model
from driftline.validation.labels import LabelRules, LabelTally, check_labels, label_problems

BINARY_NEW = (
    "dataset.task is binary but target 'late' has classes ['0', '1', '2']: ['2'] not among the champion's "
    "classes ['0', '1']; fix the labels (a binary model learns exactly two classes)"
)
UNSEEN = "target 'late' has classes ['d'] the champion was never trained on (it knows ['a', 'b', 'c'])"
RULE_CASES = [
    ("a third class in a binary target", Task.binary, [0, 1, 2, 1], [0, 1], False, [BINARY_NEW], []),
    (
        "a third class before any champion",
        Task.binary,
        ["0", "1", "2"],
        None,
        False,
        [
            "dataset.task is binary but target 'late' has 3 classes ['0', '1', '2']; fix the labels or set task: "
            "multiclass"
        ],
        [],
    ),
    ("labels read as floats are the trained classes", Task.binary, [0.0, 1.0, 1.0], [0, 1], False, [], []),
    (
        "null labels",
        Task.binary,
        [0, None, 1, np.nan],
        [0, 1],
        False,
        ["column 'late': 2 of 4 rows have no label; fill them in or drop those rows"],
        [],
    ),
    (
        "an unseen multiclass class",
        Task.multiclass,
        ["a", "b", "d"],
        ["a", "b", "c"],
        False,
        [f"{UNSEEN}; fix the labels, or set validation.allow_new_classes: true to learn them at the next retrain"],
        [],
    ),
    (
        "an unseen multiclass class, allowed",
        Task.multiclass,
        ["a", "b", "d"],
        ["a", "b", "c"],
        True,
        [],
        [f"{UNSEEN}; accepted (validation.allow_new_classes): the next retrain learns them"],
    ),
    (
        "non-finite regression labels",
        Task.regression,
        [1.5, np.inf, -np.inf, 2.0],
        None,
        False,
        [
            "column 'late': 2 labels are not finite numbers (e.g. inf, -inf); a regression target needs a number on every "
            "row"
        ],
        [],
    ),
    (
        "regression labels that are not numbers",
        Task.regression,
        ["1.5", "n.a.", "2"],
        None,
        False,
        ["column 'late': 1 labels are not finite numbers (e.g. n.a.); a regression target needs a number on every row"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("case", "task", "labels", "trained", "allow", "failures", "notes"), RULE_CASES, ids=[c[0] for c in RULE_CASES]
)
def test_label_rules_give_one_readable_line_per_problem(case, task, labels, trained, allow, failures, notes):
    from driftline.validation.report import build_report

    frame = pd.DataFrame({"late": pd.Series(labels, dtype=object if isinstance(labels[0], str) else None)})
    report = build_report(check_labels(frame, LabelRules("late", task, trained, allow)))
    assert (report.failures, report.notes) == (failures, notes)
    assert [d["expectation"] for d in report.details] == [
        "expect_labels_to_be_present",
        "expect_labels_to_fit_the_task",
    ]


def test_a_batch_without_its_label_column_has_no_label_checks():
    assert check_labels(pd.DataFrame({"x": [1]}), LabelRules("late", Task.binary, [0, 1])) == []


def test_labels_counted_chunk_by_chunk_give_the_whole_frames_verdict():
    frame = pd.DataFrame({"late": [0, 1, 2, None, 1, 0, 2, None, 1]})
    rules = LabelRules("late", Task.binary, [0, 1])
    tally = LabelTally(rules)
    for start in range(0, len(frame), 4):
        tally.add(frame.iloc[start : start + 4])
    assert tally.outcomes() == check_labels(frame, rules)


@pytest.mark.parametrize(
    ("kind", "column", "bad"),
    [
        ("binary", "churned", None),
        ("binary", "churned", 2),
        ("regression", "monthly_charges", np.inf),
    ],
)
def test_training_refuses_labels_by_the_same_rules(config_factory, kind, column, bad):
    cfg = load_config(config_factory(**TASK_KINDS[kind]))
    frame = of_kind(make_frame(60, seed=1), kind)
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[:3], column] = bad
    expected = label_problems(frame, LabelRules.of(cfg))
    assert len(expected) == 1
    with pytest.raises(DataRejected, match=re.escape(expected[0])):
        train_model(frame, cfg, source="late.csv")


# --- the archive: list, remove, the retraining window without the removed batch ------------------------------------
def _archived(cfg, tmp_path, name: str, frame: pd.DataFrame, by: str = "flow-run:continuous-training/x (1)"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return archive.archive_batch(load_batch(path, cfg.dataset), registry_folders(cfg).archive, cfg.dataset, by)


def test_a_window_that_cannot_be_trained_names_the_file_the_user_sent_and_the_fix(cfg, config_path, tmp_path):
    good = _archived(cfg, tmp_path, "week-01.csv", make_frame(100, seed=1))
    poisoned = make_frame(100, seed=2, id_offset=1000).assign(churned=lambda f: f["churned"].where(f.index > 4, 2))
    bad = _archived(cfg, tmp_path, "week-02.csv", poisoned)
    with pytest.raises(DataRejected) as rejected:
        retraining_window(cfg, [0, 1])
    message = str(rejected.value)
    assert "\n" not in message and message.startswith("retraining window of churn-demo rejected: batch week-02.csv ")
    assert (
        f"(sha256 {bad.fingerprint[:12]}, archived {bad.archived_at} by flow-run:continuous-training/x (1))" in message
    )
    assert "dataset.task is binary but target 'churned' has classes ['0', '1', '2']" in message
    assert message.endswith(
        f"take it out of every future retraining window: driftline archive remove --config "
        f"{config_path} --fingerprint {bad.fingerprint} --reason TEXT"
    )
    assert "week-01.csv" not in message

    removed, changed = archive.remove_archived_batch(
        registry_folders(cfg).archive, bad.fingerprint[:10], "a third class", "user:ops", cfg.folders.quarantine
    )
    assert changed and not removed.in_use and removed.removal_reason == "a third class"
    entries, batches = retraining_window(cfg, [0, 1])
    assert [entry.source_name for entry in entries] == ["week-01.csv"] and entries[0] == good


def test_a_removed_batch_is_kept_in_quarantine_with_its_reason_and_the_index_finds_it(cfg, tmp_path):
    entry = _archived(cfg, tmp_path, "week-02.csv", make_frame(50, seed=2))
    original = entry.location(registry_folders(cfg).archive)
    content = original.read_bytes()
    removed, changed = archive.remove_archived_batch(
        registry_folders(cfg).archive,
        entry.fingerprint,
        "collected without consent",
        "user:ops",
        cfg.folders.quarantine,
    )
    assert changed and not original.exists()
    kept = removed.location(registry_folders(cfg).archive)
    assert kept.read_bytes() == content and kept.parent.parent == cfg.folders.quarantine
    report = json.loads((kept.parent / "validation.json").read_text())
    assert report["reasons"] == ["removed from the archive: collected without consent"]
    assert report["report"]["source_name"] == "week-02.csv" and report["report"]["stage"] == "archive"
    [listed] = archive.read_archive_index(registry_folders(cfg).archive)
    assert listed == removed and (listed.removed_by, listed.archived_by) == ("user:ops", entry.archived_by)
    assert (
        archive.archived_entry(registry_folders(cfg).archive, entry.fingerprint) == removed
    )  # the same bytes are not new
    again, changed = archive.remove_archived_batch(
        registry_folders(cfg).archive, entry.fingerprint, "twice", "user:ops", cfg.folders.quarantine
    )
    assert not changed and again == removed
    assert len(list(cfg.folders.quarantine.iterdir())) == 1


def test_removing_an_unknown_or_ambiguous_fingerprint_is_a_one_line_error(cfg, tmp_path):
    _archived(cfg, tmp_path, "week-01.csv", make_frame(50, seed=1))
    with pytest.raises(DriftlineError) as unknown:
        archive.remove_archived_batch(
            registry_folders(cfg).archive, "0123456789abcdef", "x", "user:ops", cfg.folders.quarantine
        )
    assert str(unknown.value) == (
        f"no archived batch has fingerprint 0123456789abcdef in {registry_folders(cfg).archive}; `driftline archive list "
        "--config C` shows the archived batches and their fingerprints"
    )
    with pytest.raises(DriftlineError, match="no archived batch"):  # too short a prefix to be sure of
        archive.remove_archived_batch(registry_folders(cfg).archive, "0", "x", "user:ops", cfg.folders.quarantine)


@pytest.mark.parametrize(
    ("allow", "outcome"),
    [
        (False, "rejected: target 'contract' has classes ['lifetime'] the champion was never trained on"),
        (True, "accepted: ['one-year', 'lifetime']"),
    ],
)
def test_label_files_follow_the_same_rule_for_new_multiclass_classes(config_factory, tmp_path, allow, outcome):
    from driftline.monitoring import label_store

    cfg = load_config(config_factory(**TASK_KINDS["multiclass"], validation={"allow_new_classes": allow}))
    path = tmp_path / "labels.csv"
    path.write_text("customer_id,contract\nC1,one-year\nC2,lifetime\n")
    try:
        labels = label_store.load_labels(path, cfg, ["month-to-month", "one-year", "two-year"])
        observed = f"accepted: {labels.frame[label_store.LABEL].tolist()}"
    except DataRejected as rejected:
        observed = f"rejected: {rejected.reasons[0]}"
    assert observed.startswith(outcome)


def test_labels_take_the_type_of_the_trained_classes_and_a_new_class_keeps_the_target_one_type():
    from driftline.validation.labels import as_classes

    assert as_classes(pd.Series(["1", "3.0", "2"]), [0, 1, 2]).tolist() == [1, 3, 2]
    assert as_classes(pd.Series([1.0, 0.0]), ["0", "1"]).tolist() == ["1", "0"]
    assert as_classes(pd.Series(["b", "d"]), ["a", "b"]).tolist() == ["b", "d"]
