"""Task: train a challenger on validated batches and register it with its lineage."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data.archive import ArchivedBatch
from driftline.data.loading import DataBatch
from driftline.steps import challenger
from driftline.tasks.registry import run_actor


@task(name="train-challenger", cache_policy=NO_CACHE)
def train_challenger(
    batches: list[DataBatch], archived: list[ArchivedBatch], cfg: DriftlineConfig, trigger: str
) -> challenger.TrainedCandidate:
    return challenger.train_challenger(batches, archived, cfg, trigger, run_actor())
