"""Ways to validate a file read in chunks, and where a one-pass run spends its time: what bench_scoring reports.

Every option runs on the same typed chunks held in memory (the read is left out), with the suite the flow builds.
"""

from __future__ import annotations

import copy
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data import chunking
from driftline.data.storage import IncrementalFile
from driftline.governance import rollout
from driftline.serving import batch_scoring
from driftline.validation.chunked import StreamedValidation
from driftline.validation.expectations import build_expectations, validator
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import ValidationReport


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def gx_per_chunk(chunks: list[pd.DataFrame], expectations: list[Any]) -> Callable[[], Any]:
    """Great Expectations on each chunk, one context and suite for all (driftline's chunked validation until now)."""
    run = validator([copy.copy(e) for e in expectations], "per-chunk")
    return lambda: [run(chunk) for chunk in chunks]


def gx_one_validator(chunks: list[pd.DataFrame], expectations: list[Any]) -> Callable[[], Any]:
    """One GX validator for every chunk: each chunk swapped in as its batch data, the metric graph run again."""
    import great_expectations as gx
    from great_expectations.execution_engine.pandas_batch_data import PandasBatchData
    from great_expectations.validator.v1_validator import Validator

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("chunk")
    batches = asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name="reused", expectations=[copy.copy(e) for e in expectations]))
    reused = Validator(batch_definition=batches, batch_parameters={"dataframe": chunks[0]})._wrapped_validator
    configurations = reused.process_expectations_for_validation(suite.expectation_configurations)

    def run(chunk: pd.DataFrame) -> Any:
        engine = reused.execution_engine
        engine.load_batch_data(reused.active_batch_id, PandasBatchData(engine, chunk))
        return reused.graph_validate(configurations=configurations, runtime_configuration={"result_format": "SUMMARY"})

    return lambda: [run(chunk) for chunk in chunks]


def gx_in_batches(chunks: list[pd.DataFrame], expectations: list[Any], rows: int) -> Callable[[], Any]:
    """Great Expectations on validation batches of `rows` rows, larger than the scoring chunks."""
    run = validator([copy.copy(e) for e in expectations], f"batches-{rows}")
    per_batch = max(rows // len(chunks[0]), 1)

    def validate() -> list[Any]:
        return [
            run(pd.concat(chunks[start : start + per_batch], ignore_index=True))
            for start in range(0, len(chunks), per_batch)
        ]

    return validate


def columnar(chunks: list[pd.DataFrame], expectations: list[Any], scratch: Path) -> Callable[[], ValidationReport]:
    """What driftline runs now: GX's condition functions count each chunk, GX's `_validate` judges the file."""

    def validate() -> ValidationReport:
        validation = StreamedValidation(lambda first: expectations, scratch, "columnar")
        for chunk in chunks:
            validation.check(chunk)
        report = validation.report(lambda column: (chunk[column] for chunk in chunks))
        validation.close()
        return report

    return validate


def overlapped(validate: Callable[[], Any], score: Callable[[], Any]) -> float:
    """Seconds to validate on a thread while scoring runs on this one: the two cores shared by both."""
    start = time.perf_counter()
    worker = threading.Thread(target=validate)
    worker.start()
    score()
    worker.join()
    return time.perf_counter() - start


def same_verdicts(report: ValidationReport, whole_file: list[Any]) -> bool:
    """The columnar report against GX on the whole file: every verdict, count and example equal."""
    keys = ["element_count", "unexpected_count", "missing_count", "partial_unexpected_list", "observed_value"]
    got = [(d["expectation"], d["success"], [d["result"].get(k) for k in keys]) for d in report.details]
    expected = [(o.kind, o.success, [o.result.get(k) for k in keys]) for o in whole_file]
    return got == expected


def measure(path: Path, cfg: DriftlineConfig, profile: ReferenceProfile, model: Any, version: str) -> dict[str, Any]:
    """Each option on the same 1M rows: validation alone, then overlapped with scoring the same chunks."""
    read = list(chunking.read_chunks(path, cfg.dataset, cfg.scoring.chunk_rows))
    chunks = [chunk.frame for chunk in read]
    expectations = build_expectations(cfg.dataset, cfg.validation, profile, True, columns=chunks[0].columns)
    rows = sum(len(chunk) for chunk in chunks)
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as folder:
        columnar_validation = columnar(chunks, expectations, Path(folder))
        columnar_validation()  # GX's registry and the suite are built once per process: not an option's cost
        options = {
            f"GX per {len(chunks[0]):,}-row chunk (until now)": gx_per_chunk(chunks, expectations),
            "GX, one validator reused across chunks": gx_one_validator(chunks, expectations),
            "GX on 500,000-row batches": gx_in_batches(chunks, expectations, 500_000),
            f"GX on {rows:,}-row batches (the whole file)": gx_in_batches(chunks, expectations, rows),
            "GX conditions counted per chunk, judged once (now)": columnar_validation,
        }
        seconds, results = {}, {}
        for name, validate in options.items():
            seconds[name], results[name] = timed(validate)
        score = scoring_only(read, model, cfg, version, Path(folder))
        score_s, _ = timed(score)
        until_now, now = list(options)[0], list(options)[-1]
        overlap = {name: overlapped(options[name], score) for name in (until_now, now)}
        equal = same_verdicts(results[now], results[f"GX on {rows:,}-row batches (the whole file)"][0])
    return {"rows": rows, "seconds": seconds, "score_s": score_s, "overlapped": overlap, "equal": equal}


def scoring_only(
    chunks: list[chunking.Chunk], model: Any, cfg: DriftlineConfig, version: str, folder: Path
) -> Callable[[], Any]:
    """The chunks scored into an output and a log file, as the one pass does, without reading or validating."""
    source = chunking.DataFile(folder / "chunks", "0" * 64, 0, ())
    return lambda: batch_scoring.score_chunks(chunks, source, model, cfg, version, folder / "scored.parquet")


def stage_seconds(
    path: Path, cfg: DriftlineConfig, profile: ReferenceProfile, model: Any, version: str
) -> dict[str, float]:
    """Where a one-pass run spends its time: each stage alone, one after the other, on the same 1M rows."""
    seconds: dict[str, float] = {}
    seconds["read Parquet and type the columns"], read = timed(
        lambda: list(chunking.read_chunks(path, cfg.dataset, cfg.scoring.chunk_rows))
    )
    chunks = [chunk.frame for chunk in read]
    expectations = build_expectations(cfg.dataset, cfg.validation, profile, True, columns=chunks[0].columns)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as folder:
        seconds["validate (GX conditions, judged once)"], _ = timed(columnar(chunks, expectations, Path(folder)))
        seconds["predict (pipeline: features, transform, trees)"], answers = timed(
            lambda: [rollout.answer(model, version, chunk, cfg.dataset, None) for chunk in chunks]
        )
        scored_at = datetime.now(UTC)
        for name, columns_of in {
            "build and write the output": lambda chunk, answered: batch_scoring.output_columns(
                chunk, answered.predictions, cfg, version, scored_at
            ),
            "build and write the prediction log": lambda chunk, answered: batch_scoring.log_columns(
                chunk, answered, cfg, "bench", "0" * 64, scored_at
            ),
        }.items():
            seconds[name], _ = timed(
                lambda columns_of=columns_of: write_all(read, answers, columns_of, cfg, Path(folder))
            )
    return seconds


def write_all(
    chunks: list[chunking.Chunk], answers: list[Any], columns_of: Callable, cfg: DriftlineConfig, folder: Path
) -> None:
    dataset = cfg.dataset
    with IncrementalFile(
        folder, ".parquet", [dataset.id_column, *dataset.categorical_features], [dataset.id_column]
    ) as written:
        for chunk, answered in zip(chunks, answers, strict=True):
            written.write(chunk.as_read(columns_of(chunk.frame, answered)), len(chunk))
