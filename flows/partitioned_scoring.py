"""Subflow: one validated file scored in row ranges on a Dask cluster, the parts joined in order into one output."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, unmapped
from prefect_dask import DaskTaskRunner

from driftline.config import DriftlineConfig
from driftline.data.chunking import DataFile
from driftline.governance.rollout import AbSplit
from driftline.registry import ModelRef
from driftline.serving import batch_scoring, partitions
from driftline.tasks.scoring import assemble_output, score_partition


@flow(name="partitioned-scoring")
def partitioned_scoring(
    source: DataFile,
    champion: ModelRef,
    cfg: DriftlineConfig,
    output: str | None,
    challenger_version: str | None = None,
    ab: AbSplit | None = None,
) -> batch_scoring.ScoredBatch:
    folder = partitions.parts_folder(batch_scoring.output_path(output, cfg, source.path))
    scored_at = datetime.now(UTC)
    try:
        parts = score_partition.map(
            unmapped(source),
            unmapped(champion),
            unmapped(cfg),
            unmapped(scored_at),
            partitions.row_ranges(source.rows, cfg.scoring.partitions),
            unmapped(folder),
            unmapped(challenger_version),
            unmapped(ab),
        )
        return assemble_output([part.result() for part in parts], source, champion, cfg, output, scored_at)
    finally:
        partitions.remove_parts(folder)  # a failed run leaves no hidden parts behind either


def dask_task_runner(cfg: DriftlineConfig) -> DaskTaskRunner:
    """The cluster at scoring.dask_address, or a local one started for this run (no dashboard: no port to clash)."""
    if cfg.scoring.dask_address:
        return DaskTaskRunner(address=cfg.scoring.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": cfg.scoring.dask_workers,
            "threads_per_worker": 1,
            "processes": cfg.scoring.dask_processes,
            "dashboard_address": None,
        }
    )


def score_on_dask(
    source: DataFile,
    champion: ModelRef,
    cfg: DriftlineConfig,
    output: str | None,
    challenger_version: str | None = None,
    ab: AbSplit | None = None,
) -> batch_scoring.ScoredBatch:
    return partitioned_scoring.with_options(task_runner=dask_task_runner(cfg))(
        source, champion, cfg, output, challenger_version, ab
    )
