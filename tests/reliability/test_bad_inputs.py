"""Bad input (issue 6): every way a data file or a config can be wrong is refused with one line naming the file, the
column or field, what was expected and what was found. A bad data file goes to quarantine whole, beside its report,
and nothing downstream runs. Each case is a row of the reliability table (tests/reliability/outcomes.py).

The data cases run the task bodies the flows run (`validate-and-score-file` for a file to score in one pass,
`validate-file` for one scored on Dask, `load-batch` for training data): the same reading, validation and
quarantine, without a flow run each. One flow-level test checks that a rejected file stops the run before anything
downstream.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from testkit.configs import BAD_LABELS, TASK_KINDS, TRAINED_CLASSES, of_kind
from testkit.outcomes import expect
from testkit.paths import DEMO_CONFIG, WEEK

from driftline.config import load_config
from driftline.data import loading
from driftline.data.archive import read_archive_index
from driftline.data.demo import START, make_frame
from driftline.errors import ConfigError, DataRejected, PathNotAllowed
from driftline.registry import Champion, ModelRef, registry_folders
from driftline.serving.batch_scoring import output_path
from driftline.tasks.data import load_batch
from driftline.tasks.scoring import validate_and_score_file
from driftline.tasks.validation import validate_file
from driftline.training.train import train_model
from driftline.validation import chunked
from driftline.validation.profile import learn_profile

REFERENCE = make_frame(1000, seed=1)  # what the champion was trained on: its ranges and categories
BATCH = make_frame(200, seed=2, start=START + 9 * WEEK, id_offset=10_000)


def _csv(frame: pd.DataFrame, **options) -> bytes:
    return frame.to_csv(index=False, **options).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _with(column: str, value: object, rows: int | None = None) -> pd.DataFrame:
    """BATCH with `value` in the first `rows` rows of `column` (all rows when None)."""
    frame = BATCH.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[: rows if rows is not None else len(frame)], column] = value
    return frame


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("batch.csv", date_time=(2026, 1, 1, 0, 0, 0)), _csv(BATCH)
        )  # same bytes each call
    return buffer.getvalue()


def _repeated_ids() -> pd.DataFrame:
    frame = BATCH.copy()
    frame.loc[frame.index[-5:], "customer_id"] = frame["customer_id"].iloc[:5].to_numpy()
    return frame


PARQUET = _parquet(BATCH)
DATA_CASES: list[tuple[str, str, Callable[[], bytes], str]] = [
    ("empty file", "batch.csv", lambda: b"", "file is empty (no header, no rows)"),
    ("header only", "batch.csv", lambda: _csv(BATCH.iloc[:0]), "file has a header but no rows"),
    ("missing column", "batch.csv", lambda: _csv(BATCH.drop(columns=["age"])), "column 'age' is missing"),
    (
        "extra (undeclared) column",
        "batch.csv",
        lambda: _csv(BATCH.assign(internal_note="x")),
        "columns ['internal_note'] are not in the config: expected only the declared columns; drop them or list them "
        "under dataset.passthrough_columns",
    ),
    (
        "wrong type",
        "batch.csv",
        lambda: _csv(_with("age", "forty", rows=3)),
        "column 'age': expected numbers, found non-numeric values (e.g. forty)",
    ),
    (
        "column entirely null",
        "batch.csv",
        lambda: _csv(_with("monthly_charges", None)),
        "column 'monthly_charges': 100.0% nulls or unparseable values, at most 5.0% allowed",
    ),
    (
        "nulls above threshold",
        "batch.csv",
        lambda: _csv(_with("tenure_months", None, rows=40)),
        "column 'tenure_months': 20.0% nulls or unparseable values, at most 5.0% allowed",
    ),
    (
        "unseen categories beyond tolerance",
        "batch.csv",
        lambda: _csv(_with("contract", "lifetime", rows=20)),
        "column 'contract': 10.0% of values are categories unseen in training (e.g. lifetime), at most 1.0% allowed",
    ),
    (
        "values out of range",
        "batch.csv",
        lambda: _csv(_with("support_calls", 500.0, rows=20)),
        "column 'support_calls': 10.0% of values outside [-3, 9] (e.g. 500.0), at most 1.0% allowed",
    ),
    (
        "duplicate ids",
        "batch.csv",
        lambda: _csv(_repeated_ids()),
        "column 'customer_id': 10 rows share an id (e.g. C0010000, C0010001, C0010002)",
    ),
    (
        "infinity",
        "batch.csv",
        lambda: _csv(_with("monthly_charges", np.inf, rows=1)),
        "column 'monthly_charges': 0.5% of values outside [-1e+15, 1e+15] (e.g. inf)",
    ),
    (
        "huge value (1e308)",
        "batch.parquet",
        lambda: _parquet(_with("monthly_charges", 1e308, rows=1)),
        "column 'monthly_charges': 0.5% of values outside [-1e+15, 1e+15] (e.g. 1e+308)",
    ),
    (
        "non-UTF-8 bytes",
        "batch.csv",
        lambda: _csv(BATCH).replace(b"north", b"n\xf6rth", 1),
        "not UTF-8 text: byte 0xf6 at offset 491 (line 5); save the file as UTF-8",
    ),
    (
        "wrong delimiter",
        "batch.csv",
        lambda: _csv(BATCH, sep=";"),
        "one column 'customer_id;event_time;tenure_months;monthly_charges;support' was read: the file looks "
        "';'-delimited; set dataset.csv_delimiter",
    ),
    (
        "truncated Parquet",
        "batch.parquet",
        lambda: PARQUET[: len(PARQUET) // 2],
        "not a readable Parquet file: Parquet magic bytes not found in footer. Either the file is corrupted or this "
        "is not a parquet file.",
    ),
    (
        "corrupt Parquet (footer overwritten)",
        "batch.parquet",
        lambda: PARQUET[:-12] + b"\x00" * 12,
        "not a readable Parquet file: Parquet magic bytes not found in footer. Either the file is corrupted or this "
        "is not a parquet file.",
    ),
    (
        "PNG renamed .csv",
        "batch.csv",
        lambda: b"\x89PNG\r\n\x1a\n" + bytes(64),
        "content is a PNG image, not CSV text as the suffix '.csv' says; this is not a data file",
    ),
    (
        "zip renamed .csv",
        "batch.csv",
        _zip,
        "content is a ZIP archive (also .xlsx, .docx), not CSV text as the suffix '.csv' says; this is not a data file",
    ),
]


@pytest.fixture
def profile(cfg):
    return learn_profile(REFERENCE, cfg.dataset)


@pytest.fixture(scope="module")
def reference_model():
    """A model of the reference rows, trained once for the module: the champion a file to score meets."""
    return train_model(REFERENCE, load_config(DEMO_CONFIG))


# The tasks a file to score goes through: one pass in this process, or validated first for Dask.
FILE_TASKS = ["validate-and-score-file", "validate-file"]


def run_file_task(task: str, path: Path, cfg, profile, reference_model) -> None:
    if task == "validate-file":
        validate_file.fn(path, cfg, profile)
        return
    reference = dataclasses.replace(reference_model.reference, profile=profile)
    champion = Champion(ModelRef(cfg.registry.model_name, "1", ""), reference_model.model, reference)
    validate_and_score_file.fn(path, champion, cfg, None)


def quarantined_whole(rejected: DataRejected, path: Path, content: bytes) -> str:
    """What a user checks after a rejection, as one line: the reasons, when the message is one line naming the
    file, the original is gone from where it arrived, and the quarantine holds its exact bytes and the report."""
    problems = []
    if "\n" in str(rejected) or str(path) not in str(rejected):
        problems.append(f"message is not one line naming the file: {str(rejected)!r}")
    if path.exists():
        problems.append("file left where it arrived")
    folder = Path(rejected.quarantined_to or "")
    if not rejected.quarantined_to or not (folder / path.name).is_file():
        return "; ".join([*problems, "not quarantined"])
    if (folder / path.name).read_bytes() != content:
        problems.append("quarantined bytes differ from the original")
    if json.loads((folder / "validation.json").read_text())["reasons"] != rejected.reasons:
        problems.append("report beside it does not hold the reasons")
    return "; ".join(problems) or "quarantined whole: " + "; ".join(rejected.reasons)


@pytest.mark.parametrize("task", FILE_TASKS)
@pytest.mark.parametrize(("case", "name", "content", "reason"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_file_to_score_is_quarantined_whole_with_a_one_line_reason(
    case, name, content, reason, task, cfg, profile, reference_model, tmp_path, prefect_api_url
):
    path, sent = tmp_path / "incoming" / name, content()
    path.parent.mkdir()
    path.write_bytes(sent)
    with pytest.raises(DataRejected) as rejected:
        run_file_task(task, path, cfg, profile, reference_model)
    expect(
        case=f"{case} ({task})",
        expected=f"quarantined whole: {reason}",
        observed=quarantined_whole(rejected.value, path, sent),
    )
    assert not cfg.folders.outputs.exists() or list(cfg.folders.outputs.iterdir()) == []


def test_training_data_with_infinities_is_rejected_without_a_reference_profile(cfg, tmp_path, prefect_api_url):
    """A first training has no profile to compare ranges with: the documented bound still holds."""
    path = tmp_path / "training.csv"
    content = _csv(_with("monthly_charges", -np.inf, rows=2))
    path.write_bytes(content)
    from driftline.tasks.validation import validate_batch

    with pytest.raises(DataRejected) as rejected:
        validate_batch.fn(load_batch.fn(path, cfg), cfg, profile=None, for_training=True)
    expect(
        case="infinity in training data (no profile)",
        expected="quarantined whole: column 'monthly_charges': 1.0% of values outside [-1e+15, 1e+15] (e.g. -inf)",
        observed=quarantined_whole(rejected.value, path, content),
    )


@pytest.mark.parametrize(("case", "kind", "column", "bad", "reason"), BAD_LABELS, ids=[c[0] for c in BAD_LABELS])
def test_bad_labels_in_a_new_batch_are_quarantined_before_the_archive(
    case, kind, column, bad, reason, config_factory, tmp_path, prefect_api_url
):
    """The admission step of `run` and `monitor` (and of `train --data`): labels against the task and the champion's
    classes. tests/flows/test_label_poisoning.py sends each through the flows themselves."""
    from driftline.tasks.validation import validate_batch

    cfg = load_config(config_factory(**TASK_KINDS[kind]))
    frame = of_kind(BATCH, kind)
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[:10], column] = bad
    path = tmp_path / "batch.csv"
    content = _csv(frame)
    path.write_bytes(content)
    profile = learn_profile(of_kind(REFERENCE, kind), cfg.dataset)
    with pytest.raises(DataRejected) as rejected:
        validate_batch.fn(
            load_batch.fn(path, cfg), cfg, profile, for_training=False, trained_classes=TRAINED_CLASSES[kind]
        )
    expect(
        case=f"bad labels: {case}",
        expected=f"quarantined whole: {reason}",
        observed=quarantined_whole(rejected.value, path, content),
    )


APPENDED = b"C9999999,2026-03-10T00:00:00Z,1,1.0,1,30,monthly,card,north,0\n"


@pytest.mark.parametrize("stage", [*FILE_TASKS, "load-batch"])
def test_file_that_grows_while_read_is_rejected(
    stage, cfg, profile, reference_model, tmp_path, monkeypatch, prefect_api_url
):
    """A writer appends while the file is read. Wrapping the real reader makes that interleaving certain; a real
    concurrent writer would only sometimes land inside the read."""
    module, reader = (chunked, "read_chunks") if stage in FILE_TASKS else (loading, "_read_raw")
    read = getattr(module, reader)

    def read_while_written(path, *args, **kwargs):
        result = read(path, *args, **kwargs)
        chunks = list(result) if stage in FILE_TASKS else result
        with open(path, "ab") as handle:
            handle.write(APPENDED)
        return iter(chunks) if stage in FILE_TASKS else chunks

    monkeypatch.setattr(module, reader, read_while_written)
    path = tmp_path / "growing.csv"
    path.write_bytes(_csv(BATCH))
    size = path.stat().st_size
    with pytest.raises(DataRejected) as rejected:
        run_file_task(stage, path, cfg, profile, reference_model) if stage in FILE_TASKS else load_batch.fn(path, cfg)
    expect(
        case=f"file growing while read ({stage})",
        expected=f"quarantined whole: file changed while it was read (size {size} -> {size + len(APPENDED)} "
        "bytes, modification time changed); write files elsewhere and move them in when complete",
        observed=quarantined_whole(rejected.value, path, _csv(BATCH) + APPENDED),
    )


def refused_untouched(refused: PathNotAllowed, path: Path, content: bytes | None, cfg) -> str:
    """The refusal names the path, the roots and the key to extend; the file is where it was, unchanged."""
    message = str(refused)
    problems = []
    if not message.startswith(f"{path}: outside the allowed folders") or "storage.allowed_roots" not in message:
        problems.append(f"message does not name the path and storage.allowed_roots: {message!r}")
    if content is not None and (not path.is_file() or path.read_bytes() != content):
        problems.append("file moved or changed")
    if cfg.folders.quarantine.exists() and any(cfg.folders.quarantine.iterdir()):
        problems.append("something was quarantined")
    return "; ".join(problems) or "refused, nothing read, moved or written"


def test_paths_outside_the_allowed_folders_are_refused(cfg, profile, tmp_path_factory, tmp_path, prefect_api_url):
    outside = tmp_path_factory.mktemp("elsewhere") / "batch.csv"  # a sibling of tmp_path: not under any root
    outside.write_bytes(_csv(BATCH))
    link = tmp_path / "incoming" / "link.csv"  # inside an allowed folder, pointing out of it
    link.parent.mkdir()
    link.symlink_to(outside)
    tries = {
        "data file outside the allowed folders": (outside, lambda: validate_file.fn(outside, cfg, profile)),
        "symlink out of an allowed folder": (link, lambda: load_batch.fn(link, cfg)),
        "output path climbing out with ..": (
            cfg.folders.outputs / ".." / ".." / ".." / "out.parquet",
            lambda: output_path(str(cfg.folders.outputs / ".." / ".." / ".." / "out.parquet"), cfg, outside),
        ),
    }
    for case, (path, attempt) in tries.items():
        with pytest.raises(PathNotAllowed) as refused:
            attempt()
        content = None if path.suffix == ".parquet" else _csv(BATCH)
        expect(
            case=case,
            expected="refused, nothing read, moved or written",
            observed=refused_untouched(refused.value, path, content, cfg),
        )


def test_extra_columns_declared_as_passthrough_are_accepted(config_factory, profile, tmp_path, prefect_api_url):
    dataset = yaml.safe_load(DEMO_CONFIG.read_text())["dataset"]
    cfg = load_config(config_factory(dataset={**dataset, "passthrough_columns": ["internal_note"]}))
    path = tmp_path / "batch.csv"
    path.write_bytes(_csv(BATCH.assign(internal_note="x")))
    source = validate_file.fn(path, cfg, profile)
    expect(
        case="extra column declared in dataset.passthrough_columns",
        expected="accepted: 200 rows",
        observed=f"accepted: {source.rows} rows",
    )


CONFIG_CASES: list[tuple[str, Callable[[dict], object], str]] = [
    (
        "config: unknown key",
        lambda d: d["dataset"].update(colour="red"),
        "dataset.colour: unknown key; remove it or check its spelling",
    ),
    (
        "config: wrong type",
        lambda d: d["validation"].update(max_null_fraction="five percent"),
        "validation.max_null_fraction: Input should be a valid number, unable to parse string as a number "
        "(got 'five percent')",
    ),
    ("config: missing target", lambda d: d["dataset"].pop("target"), "dataset.target: required but missing"),
    (
        "config: target is also a feature",
        lambda d: d["dataset"]["features"].update(churned="numeric"),
        "dataset: target 'churned' is also listed under features; remove it from features",
    ),
    (
        "config: estimator does not import",
        lambda d: d["model"].update(estimator="sklearn.ensemble.NoSuchForest"),
        "model: estimator 'sklearn.ensemble.NoSuchForest' does not import: module 'sklearn.ensemble' has no attribute "
        "'NoSuchForest'; check the module and class name, e.g. sklearn.ensemble.RandomForestClassifier",
    ),
    (
        "config: estimator outside model.allowed_modules",
        lambda d: d["model"].update(estimator="subprocess.Popen"),
        "model: estimator 'subprocess.Popen' is not under an allowed module ['sklearn']; use a full import path such "
        "as sklearn.linear_model.LogisticRegression, or add its top-level package to model.allowed_modules after "
        "reviewing it",
    ),
    (
        "config: estimator parameter out of range",
        lambda d: d["model"]["params"].update(max_iter=-5),
        "model.params.max_iter: must be an int in the range [1, inf) for HistGradientBoostingClassifier, got -5; "
        "correct it under model.params",
    ),
    (
        "config: unknown estimator parameter",
        lambda d: d["model"]["params"].update(max_itter=50),
        "model.params.max_itter: not a parameter of HistGradientBoostingClassifier; remove it or check its spelling "
        "(did you mean 'max_iter'?)",
    ),
]


# The key whose line the error names: the deepest key of the field's path that the file holds (a rule across a whole
# model's parameters names no line).
LINE_OF = {
    "config: unknown key": "  colour:",
    "config: wrong type": "  max_null_fraction:",
    "config: missing target": "dataset:",
    "config: target is also a feature": "dataset:",
    "config: estimator does not import": "model:",
    "config: estimator outside model.allowed_modules": "model:",
}


@pytest.mark.parametrize(("case", "change", "reason"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_names_the_file_the_field_and_the_fix(case, change, reason, tmp_path):
    raw = copy.deepcopy(yaml.safe_load(DEMO_CONFIG.read_text()))
    change(raw)
    path = tmp_path / "driftline.yaml"
    path.write_text(yaml.safe_dump(raw))
    lines = path.read_text().splitlines()
    where = (
        f":{lines.index(next(line for line in lines if line.startswith(LINE_OF[case]))) + 1}" if case in LINE_OF else ""
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    expect(
        case=case,
        expected=f"refused: driftline.yaml{where}: {reason}",
        observed="refused: " + str(refused.value).replace(str(path), "driftline.yaml"),
    )


def test_bad_estimator_parameter_exits_2_before_training_starts(tmp_path, demo_files, capsys, prefect_api_url):
    from driftline.cli.main import main

    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["storage"] = {"workspace": str(tmp_path / "workspace")}
    raw["model"]["params"]["max_iter"] = -5
    path = tmp_path / "driftline.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["train", "--config", str(path), "--data", str(demo_files["reference"])])
    line = capsys.readouterr().err.strip()
    named = line.startswith(f"driftline: {path}: model.params.max_iter: must be an int") and "\n" not in line
    archived = (tmp_path / "workspace" / "archive").exists()
    expect(
        case="config: estimator parameter out of range, from the CLI",
        expected="exit 2; one line naming model.params.max_iter; nothing archived",
        observed=f"exit {code}; {'one line naming model.params.max_iter' if named else line}; "
        f"{'archived' if archived else 'nothing archived'}",
    )


def test_yaml_syntax_error_is_one_line_naming_the_file_line_column_and_what_was_expected(tmp_path):
    path = tmp_path / "driftline.yaml"
    lines = DEMO_CONFIG.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  params:"))
    lines[at] = "  params: {max_iter: 150, learning_rate: 0.05"  # the closing brace forgotten; the next line is
    assert lines[at + 1] == "  seed: 42"  # where the parser finds out
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    expect(
        case="config: YAML syntax error",
        expected=(
            f"refused: driftline.yaml: not valid YAML at line {at + 2}, column 7: expected ',' or '}}', but got ':' "
            f"(while parsing a flow mapping opened at line {at + 1}, column 11); correct the YAML there"
        ),
        observed="refused: " + str(refused.value).replace(str(path), "driftline.yaml"),
    )


@pytest.mark.parametrize(
    ("case", "name", "content"),
    [
        ("training flow given an undeclared column", "batch.csv", lambda: _csv(BATCH.assign(internal_note="x"))),
        ("training flow given a PNG", "batch.csv", lambda: b"\x89PNG\r\n\x1a\n" + bytes(64)),
    ],
)
def test_rejected_file_stops_the_flow_before_anything_downstream(
    case, name, content, config_path, cfg, tmp_path, prefect_api_url
):
    from driftline.flows.params import TrainParams
    from driftline.flows.training import training

    path = tmp_path / name
    path.write_bytes(content())
    before = downstream(cfg)
    with pytest.raises(DataRejected) as rejected:
        training(TrainParams(config=str(config_path), data=[str(path)]))
    after = downstream(cfg)
    ran = [step for step in after if after[step] > before[step]]
    observed = quarantined_whole(rejected.value, path, content()).split(":")[0]
    expect(
        case=case,
        expected="quarantined whole; nothing archived, trained or registered",
        observed=f"{observed}; " + (f"but {', '.join(ran)}" if ran else "nothing archived, trained or registered"),
    )


def downstream(cfg) -> dict[str, int]:
    """What a training run leaves: archive entries, MLflow runs, versions of this model (counted, not assumed 0)."""
    from mlflow import MlflowClient

    # Both URIs: without registry_uri the client takes the registry an earlier Registry set process-wide.
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    return {
        "archived": len(read_archive_index(registry_folders(cfg).archive)),
        "trained": len(client.search_runs([e.experiment_id for e in client.search_experiments()])),
        "registered": len(client.search_model_versions(f"name = '{cfg.registry.model_name}'")),
    }
