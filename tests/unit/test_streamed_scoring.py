"""Files read, validated and scored chunk by chunk give what the whole file in memory gives, and nothing half-written."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from testkit.paths import DEMO_CONFIG

from driftline.config import parse_config
from driftline.data import prediction_log
from driftline.data.chunking import DataFile
from driftline.data.demo import inject_quality_faults, make_frame
from driftline.data.loading import load_batch
from driftline.errors import ConfigError, DataRejected
from driftline.governance import rollout
from driftline.modeling import pipeline
from driftline.registry import registry_folders
from driftline.serving import batch_scoring, partitions
from driftline.steps import admission
from driftline.validation.chunked import validate_file
from driftline.validation.expectations import build_expectations, validate_frame
from driftline.validation.labels import LabelRules, check_labels
from driftline.validation.profile import learn_profile

ROWS = 900
SCORED_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def config(workspace: Path, **scoring_section):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["storage"] = {"workspace": str(workspace), "allowed_roots": [str(workspace.parent)]}
    raw["model"]["params"] = {"max_iter": 20, "max_leaf_nodes": 7}
    raw["scoring"] = scoring_section
    return parse_config(raw)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = config(tmp_path_factory.mktemp("train"))
    return pipeline.fit(make_frame(2000, seed=1), cfg)


@pytest.fixture(scope="module")
def profile():
    cfg = config(Path("unused"))
    return learn_profile(make_frame(2000, seed=1), cfg.dataset)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=250)  # several row groups, not aligned with the chunks
    return path


def batch_frame() -> pd.DataFrame:
    frame = make_frame(ROWS, seed=3, id_offset=50_000)
    frame.loc[[5, 400, 401], "region"] = np.nan  # missing categories, one chunk boundary among them
    frame.loc[7, "age"] = np.nan
    return frame


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def in_memory(model, path: Path, cfg, output: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What today's in-memory path writes: the whole output file and the whole log file, read back."""
    batch = load_batch(path, cfg.dataset)
    scored, answered = batch_scoring.score_frame(model, batch.frame, cfg, "3", SCORED_AT)
    rows = batch_scoring.log_records(batch.frame, answered, cfg, batch.name, batch.fingerprint, SCORED_AT)
    log = prediction_log.append(rows, output.parent / "whole-log", batch.name)
    return read(batch_scoring.write_output(scored, output)), pd.read_parquet(log)


def source_of(path: Path, cfg) -> DataFile:
    source, report = validate_file(path, cfg, None, for_training=False)
    assert report.success, report.failures
    return source


@pytest.mark.parametrize(
    "chunk_rows",
    # 400 and 10 × ROWS cut the file as 128 and None do: in the slow suite, to keep `make test` under 5 minutes
    [128, pytest.param(400, marks=pytest.mark.slow), ROWS - 1, pytest.param(10 * ROWS, marks=pytest.mark.slow), None],
)
@pytest.mark.parametrize("file_type", [".csv", ".parquet"])
def test_streamed_scoring_writes_the_same_output_and_log_as_in_memory_scoring(model, tmp_path, chunk_rows, file_type):
    cfg = config(tmp_path / "ws", chunk_rows=chunk_rows)
    path = write(batch_frame(), tmp_path / f"batch{file_type}")
    for output_type in (".parquet", ".csv"):
        expected_output, expected_log = in_memory(model, path, cfg, tmp_path / "whole" / f"scores{output_type}")
        streamed = batch_scoring.score_file(
            source_of(path, cfg), model, cfg, "3", tmp_path / f"scores{output_type}", SCORED_AT
        )
        assert streamed.rows == ROWS
        pd.testing.assert_frame_equal(read(streamed.output), expected_output)
        pd.testing.assert_frame_equal(pd.read_parquet(streamed.log), expected_log)
        if output_type == ".csv":
            assert streamed.output.read_bytes() == (tmp_path / "whole" / "scores.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.glob(".*")) == []  # no temp file left beside the outputs


def test_parts_scored_apart_and_assembled_equal_the_single_process_output(model, tmp_path):
    cfg = config(tmp_path / "ws", chunk_rows=100)
    path = write(batch_frame(), tmp_path / "batch.csv")
    source = source_of(path, cfg)
    single = batch_scoring.score_file(source, model, cfg, "3", tmp_path / "single.parquet", SCORED_AT)
    folder = partitions.parts_folder(tmp_path / "parts.parquet")
    ranges = partitions.row_ranges(source.rows, 4)
    assert [r.start for r in ranges] == [0, 225, 450, 675] and ranges[-1].stop == ROWS
    parts = [partitions.score_part(source, model, cfg, "3", SCORED_AT, rows, folder) for rows in reversed(ranges)]
    assembled = partitions.assemble(parts, source, cfg, tmp_path / "parts.parquet", "3")
    partitions.remove_parts(folder)
    pd.testing.assert_frame_equal(read(assembled.output), read(single.output))
    pd.testing.assert_frame_equal(pd.read_parquet(assembled.log), pd.read_parquet(single.log))
    assert not folder.exists()


def test_text_stored_as_large_strings_or_dictionaries_is_logged_as_plain_strings_are(model, tmp_path):
    """The writers take the reader's Arrow text as it is: whatever string type the file used, the rows logged and
    output are those of the same values stored as plain strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = batch_frame()
    plain = pa.Table.from_pandas(frame, preserve_index=False)
    other = plain.set_column(
        plain.schema.get_field_index("customer_id"), "customer_id", plain.column("customer_id").cast(pa.large_string())
    )
    other = other.set_column(
        other.schema.get_field_index("region"), "region", other.column("region").dictionary_encode()
    )
    written = []
    for name, table in (("plain", plain), ("other", other)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path, row_group_size=250)
        cfg = config(tmp_path / f"ws-{name}", chunk_rows=128)
        scored = batch_scoring.score_file(
            source_of(path, cfg), model, cfg, "3", tmp_path / f"{name}-out.parquet", SCORED_AT
        )
        log = pd.read_parquet(scored.log).drop(columns=[prediction_log.SOURCE, prediction_log.SOURCE_FINGERPRINT])
        written.append((read(scored.output), log))
    pd.testing.assert_frame_equal(written[1][0], written[0][0])
    pd.testing.assert_frame_equal(written[1][1], written[0][1])
    assert written[0][1]["region"].isna().sum() == 3


@pytest.mark.parametrize("mode", ["canary", pytest.param("shadow", marks=pytest.mark.slow)])
def test_chunks_answered_on_several_threads_write_what_one_thread_writes_in_row_order(model, tmp_path, mode):
    challenger_model = pipeline.fit(make_frame(2000, seed=8), config(tmp_path / "train"))
    challenger = rollout.Challenger(challenger_model, "4", mode, canary_share=0.3)
    path = write(batch_frame(), tmp_path / "batch.parquet")
    written = {}
    for threads in (1, 3):
        cfg = config(tmp_path / f"ws{threads}", chunk_rows=40, threads=threads)  # 23 chunks, 3 in flight at once
        scored = batch_scoring.score_file(
            source_of(path, cfg), model, cfg, "3", tmp_path / f"out{threads}.parquet", SCORED_AT, challenger
        )
        written[threads] = (read(scored.output), pd.read_parquet(scored.log), scored.tally)
    (output, log, tally), (threaded_output, threaded_log, threaded_tally) = written[1], written[3]
    assert list(threaded_output["customer_id"]) == list(batch_frame()["customer_id"])
    pd.testing.assert_frame_equal(threaded_output, output)
    pd.testing.assert_frame_equal(threaded_log, log)
    assert threaded_tally == tally and tally.rows == ROWS
    assert (tally.canary_rows > 0) == (mode == "canary") and (tally.shadow_rows == ROWS) == (mode == "shadow")


@pytest.mark.parametrize("chunk_rows", [50, 399, 400, None])
@pytest.mark.parametrize("file_type", [".csv", ".parquet"])
def test_streamed_validation_reports_what_whole_file_validation_reports(profile, tmp_path, chunk_rows, file_type):
    frame = inject_quality_faults(make_frame(ROWS, seed=5, id_offset=40_000), 5)  # last 20 ids repeat the first 20
    frame.loc[400, "customer_id"] = frame.loc[399, "customer_id"]  # a repeat across the boundary of 400-row chunks
    frame.loc[[398, 401], "customer_id"] = None
    frame.loc[[10, 450], "churned"] = 2  # a third class in a binary task, in two chunks
    frame.loc[[399, 800], "churned"] = None
    cfg = config(tmp_path / "ws", chunk_rows=chunk_rows)
    path = write(frame, tmp_path / f"faulty{file_type}")
    whole = load_batch(path, cfg.dataset)
    expectations = build_expectations(
        cfg.dataset, cfg.validation, profile, require_target=True, columns=whole.frame.columns
    )
    rules = LabelRules.of(cfg, [0, 1])
    expected = validate_frame(whole.frame, expectations, also=check_labels(whole.frame, rules))

    source, report = validate_file(path, cfg, profile, for_training=False, labels=rules)

    assert (source.rows, source.fingerprint) == (ROWS, whole.fingerprint)
    assert report.failures == expected.failures
    assert "column 'customer_id': 42 rows share an id (e.g. C0040000, C0040001, C0040002)" in report.failures
    assert "column 'churned': 2 of 900 rows have no label; fill them in or drop those rows" in report.failures
    assert any(
        f.startswith("dataset.task is binary but target 'churned' has classes ['0', '1', '2']") for f in report.failures
    )
    assert [d["success"] for d in report.details] == [d["success"] for d in expected.details]


def test_a_clean_file_passes_streamed_validation(profile, tmp_path):
    cfg = config(tmp_path / "ws", chunk_rows=128)
    source, report = validate_file(write(batch_frame(), tmp_path / "b.parquet"), cfg, profile, False)
    assert report.success and source.rows == ROWS and "customer_id" in source.columns


def test_a_check_of_the_whole_table_needs_whole_files(profile, tmp_path):
    extra = [{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "age", "min_value": 0}}]
    path = write(batch_frame(), tmp_path / "b.csv")
    raw_cfg = config(tmp_path / "ws", chunk_rows=300).model_dump(mode="json")
    raw_cfg["validation"]["extra_expectations"] = extra
    with pytest.raises(
        ConfigError,
        match=r"\['expect_column_mean_to_be_between'\] check the whole table .* "
        r"set scoring.chunk_rows: null to read files whole",
    ):
        validate_file(path, parse_config(raw_cfg), profile, False)
    raw_cfg["scoring"]["chunk_rows"] = None
    assert validate_file(path, parse_config(raw_cfg), profile, False)[1].success


def test_a_run_that_fails_midway_leaves_no_output_and_no_log(model, tmp_path):
    cfg = config(tmp_path / "ws", chunk_rows=100)
    path = write(batch_frame(), tmp_path / "batch.csv")
    source = source_of(path, cfg)
    lines = path.read_text().splitlines()
    lines[500] += ",one,field,too,many"  # the file changed after validation: the 5th chunk cannot be parsed
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataRejected, match="not parseable as CSV"):
        batch_scoring.score_file(source, model, cfg, "3", tmp_path / "out" / "scores.parquet", SCORED_AT)
    assert list((tmp_path / "out").iterdir()) == []
    assert prediction_log.log_files(registry_folders(cfg).prediction_log) == []
    assert [p.name for p in registry_folders(cfg).prediction_log.iterdir()] == []


def one_pass(path: Path, cfg, model, profile, output: Path):
    """What the batch-scoring flow runs for a file in this process: read once, validated, scored, written."""

    with (
        admission.admit_in_one_pass(path, cfg, profile, None) as admitted,
        batch_scoring.PendingScores(admitted, cfg, "3", output, SCORED_AT) as pending,
    ):
        pending.score(admitted.chunks(), model)
        admitted.judge()
        return pending.commit()


@pytest.mark.parametrize("chunk_rows", [128, 400, None])
@pytest.mark.parametrize("file_type", [".csv", ".parquet"])
def test_one_pass_writes_what_validating_then_scoring_writes(model, profile, tmp_path, chunk_rows, file_type):
    path = write(batch_frame(), tmp_path / f"batch{file_type}")
    two_pass_cfg, one_pass_cfg = (config(tmp_path / name, chunk_rows=chunk_rows) for name in ("two", "one"))
    source, report = validate_file(path, two_pass_cfg, profile, for_training=False)
    assert report.success, report.failures
    expected = batch_scoring.score_file(source, model, two_pass_cfg, "3", tmp_path / "two.parquet", SCORED_AT)

    scored = one_pass(path, one_pass_cfg, model, profile, tmp_path / "one.parquet")

    assert scored.rows == expected.rows == ROWS
    pd.testing.assert_frame_equal(read(scored.output), read(expected.output))
    pd.testing.assert_frame_equal(pd.read_parquet(scored.log), pd.read_parquet(expected.log))
    assert scored.log.name.split("-", 1)[1] == expected.log.name.split("-", 1)[1]  # after the time: the same key


def scored_chunks(monkeypatch, fail_on: int | None = None) -> list[int]:
    """The rows of each chunk the model scored; with `fail_on`, scoring that chunk raises."""
    seen, answer = [], batch_scoring.rollout.answer

    def counted(model, version, frame, *args, **kwargs):
        if len(seen) == fail_on:
            raise RuntimeError("the model server went away")
        seen.append(len(frame))
        return answer(model, version, frame, *args, **kwargs)

    monkeypatch.setattr(batch_scoring.rollout, "answer", counted)
    return seen


@pytest.mark.parametrize(("fault", "doomed_at_once"), [("unseen categories", False), ("infinity", True)])
def test_a_file_failing_in_a_middle_chunk_leaves_nothing_behind_and_is_quarantined_whole(
    model, profile, tmp_path, monkeypatch, fault, doomed_at_once
):
    cfg = config(tmp_path / "ws", chunk_rows=200)
    frame = batch_frame()
    if fault == "infinity":
        frame.loc[450, "monthly_charges"] = np.inf  # no slack for infinities: the third chunk dooms the file
    else:
        frame.loc[420:440, "contract"] = "lifetime"  # 2.3% of the file, all in the third chunk: known at the end
    (tmp_path / "incoming").mkdir()
    path = write(frame, tmp_path / "incoming" / "middle_bad.csv")
    expectations = build_expectations(cfg.dataset, cfg.validation, profile, True, columns=frame.columns)
    whole_file = validate_frame(load_batch(path, cfg.dataset).frame, expectations).failures
    seen = scored_chunks(monkeypatch)

    with pytest.raises(DataRejected) as rejected:
        one_pass(path, cfg, model, profile, tmp_path / "out" / "scores.parquet")

    assert rejected.value.reasons == whole_file and len(whole_file) == 1
    assert seen == ([200, 200] if doomed_at_once else [200, 200, 200, 200, 100])  # a doomed file is scored no further
    assert not path.exists() and [p.name for p in cfg.folders.quarantine.glob("*/middle_bad.csv")] == ["middle_bad.csv"]
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert prediction_log.log_files(registry_folders(cfg).prediction_log) == []


def test_scoring_that_fails_midway_quarantines_a_file_that_fails_validation_and_keeps_a_valid_one(
    model, profile, tmp_path, monkeypatch
):
    cfg = config(tmp_path / "ws", chunk_rows=200)
    frame = batch_frame()
    frame.loc[820:840, "contract"] = "lifetime"  # in the last chunk, after scoring stopped
    bad, good = write(frame, tmp_path / "bad.csv"), write(batch_frame(), tmp_path / "good.csv")
    scored_chunks(monkeypatch, fail_on=1)

    with pytest.raises(DataRejected, match="categories unseen in training"):
        one_pass(bad, cfg, model, profile, tmp_path / "out" / "bad.parquet")
    with pytest.raises(RuntimeError, match="the model server went away"):
        one_pass(good, cfg, model, profile, tmp_path / "out" / "good.parquet")

    assert not bad.exists() and good.exists()  # only the invalid file is quarantined
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert prediction_log.log_files(registry_folders(cfg).prediction_log) == []
