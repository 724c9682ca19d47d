"""The step behind each scoring task: score, write and log, then record the scoring run in the registry.

The scoring run (rows and seconds, a rollout's figures) is what the scoring-throughput KPI reads back. This module
calls `Registry`, so it sits above the registry package, which never imports it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from driftline.config import DriftlineConfig
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch, Observed
from driftline.governance import rollout
from driftline.modeling.pipeline import predict
from driftline.registry import Champion, ModelRef, Registry
from driftline.serving import batch_scoring, partitions
from driftline.serving.batch_scoring import ScoredBatch, ScoredFile
from driftline.serving.partitions import RowRange, ScoredPart
from driftline.steps import admission


def score_batch(
    batch: DataBatch,
    champion: Champion,
    cfg: DriftlineConfig,
    output: str | None,
    challenger: rollout.Challenger | None = None,
) -> ScoredBatch:
    """Predictions to the output file; every row, with its inputs, to the prediction log that monitoring reads."""
    started, version = time.perf_counter(), champion.ref.version
    path = batch_scoring.output_path(output, cfg, batch.path)
    scored, signal = batch_scoring.score_batch(batch, champion.model, cfg, version, path, challenger)
    return _recorded(scored, batch.name, version, time.perf_counter() - started, cfg, signal)


def load_ab_arm(cfg: DriftlineConfig) -> rollout.Challenger | None:
    """A running A/B test's arm B, loaded to answer its share of the units (by `rollout.AbSplit`); None without one."""
    registry = Registry(cfg)
    test = registry.running_ab_test()
    if test is None:
        return None
    model = registry.load_model(registry.version_ref(test.version))
    return rollout.Challenger.of_ab_test(model, rollout.AbSplit.of(test))


def predict_batch(observed: Observed, champion: Champion, cfg: DriftlineConfig) -> np.ndarray:
    """The champion's prediction signal on what is monitored, without writing outputs."""
    return predict(champion.model, observed.frame, cfg.dataset).signal(cfg.dataset.task)


def validate_and_score_file(
    path: str | Path,
    champion: Champion,
    cfg: DriftlineConfig,
    output: str | None,
    challenger: rollout.Challenger | None = None,
    show: admission.ShowVerdict | None = None,
) -> tuple[DataFile, ScoredBatch]:
    """One pass over a file: each chunk read once, validated against the champion's profile, then streamed through
    the champion (and a rollout's challenger) into the output file and one prediction-log file.

    Both files appear once the whole file passed; a failing file is quarantined whole and leaves nothing behind
    (DataRejected). `show` is given the verdict, pass or fail.
    """
    started, version = time.perf_counter(), champion.ref.version
    destination = batch_scoring.output_path(output, cfg, Path(path))  # a bad --output is refused before reading
    profile, classes = champion.reference.profile, champion.reference.trained_classes(cfg.dataset)
    with (
        admission.admit_in_one_pass(path, cfg, profile, classes, show) as admitted,
        batch_scoring.PendingScores(admitted, cfg, version, destination) as pending,
    ):
        pending.score(admitted.chunks(), champion.model, challenger)
        admitted.judge()  # a file that fails is quarantined (DataRejected) and nothing scored from it appears
        scored = pending.commit()
    return admitted.source, _recorded(scored, admitted.name, version, time.perf_counter() - started, cfg)


def score_partition(
    source: DataFile,
    champion: ModelRef,
    cfg: DriftlineConfig,
    scored_at: datetime,
    rows: RowRange,
    folder: Path,
    challenger_version: str | None = None,
    ab: rollout.AbSplit | None = None,
) -> ScoredPart:
    """One row range, on whichever worker runs it; the worker loads the model versions from the registry (skops,
    reviewed types) instead of receiving pickled models. With `ab`, the challenger is that A/B test's arm B."""
    registry, held = Registry(cfg), None
    if challenger_version is not None:
        model = registry.load_model(ModelRef(champion.name, challenger_version, run_id=""))  # by name and version
        held = rollout.Challenger.of_ab_test(model, ab) if ab else rollout.Challenger.of(model, challenger_version, cfg)
    model = registry.load_model(champion)
    return partitions.score_part(source, model, cfg, champion.version, scored_at, rows, folder, held)


def assemble_output(
    parts: list[ScoredPart],
    source: DataFile,
    champion: ModelRef,
    cfg: DriftlineConfig,
    output: str | None,
    scored_at: datetime,
) -> ScoredBatch:
    """The parts joined in row order into the output file and one log file, each appearing whole."""
    path = batch_scoring.output_path(output, cfg, source.path)
    scored = partitions.assemble(parts, source, cfg, path, champion.version)
    return _recorded(scored, source.name, champion.version, (datetime.now(UTC) - scored_at).total_seconds(), cfg)


def _recorded(
    scored: ScoredFile, name: str, version: str, seconds: float, cfg: DriftlineConfig, signal: np.ndarray | None = None
) -> ScoredBatch:
    """The run's rows and seconds logged (the scoring-throughput KPI), with the canary's rows and the shadow's
    agreement under a rollout."""
    rollout_figures = scored.tally.figures(cfg.dataset.task) if scored.tally else {}
    Registry(cfg).log_scoring(version, name, scored.rows, seconds, rollout_figures)
    return ScoredBatch(scored.output, scored.rows, version, scored.log, rollout_figures, signal)
