"""Task: train a challenger on validated batches and register it with its lineage."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data.archive import ArchivedBatch
from driftline.data.loading import DataBatch
from driftline.registry import ModelRef, Registry
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import TrainedModel, train_model
from tasks.registry import run_actor


@dataclass(frozen=True)
class TrainedCandidate:
    """A registered challenger and the holdout it must be judged on, together with the champion."""

    ref: ModelRef
    trained: TrainedModel


@task(name="train-challenger", cache_policy=NO_CACHE)
def train_challenger(
    batches: list[DataBatch], archived: list[ArchivedBatch], cfg: DriftlineConfig, trigger: str
) -> TrainedCandidate:
    frame = pd.concat([batch.frame for batch in batches], ignore_index=True)
    trained = train_model(frame, cfg, source=", ".join(batch.name for batch in batches))
    sources = [DataSource(a.fingerprint, a.rows, a.source_name, a.path) for a in archived]
    ref = Registry(cfg).log_candidate(trained, collect_lineage(cfg, sources), trigger, run_actor())
    return TrainedCandidate(ref=ref, trained=trained)
