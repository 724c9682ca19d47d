"""A challenger trained on validated batches and registered with its lineage, ready to be judged at the gate."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data.archive import ArchivedBatch
from driftline.data.loading import DataBatch
from driftline.registry import ModelRef, Registry
from driftline.registry.audit_events import Actor
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import TrainedModel, train_model


@dataclass(frozen=True)
class TrainedCandidate:
    """A registered challenger and the holdout it must be judged on, together with the champion."""

    ref: ModelRef
    trained: TrainedModel


def train_challenger(
    batches: list[DataBatch], archived: list[ArchivedBatch], cfg: DriftlineConfig, trigger: str, actor: Actor
) -> TrainedCandidate:
    """One model trained on the batches together, registered as `challenger` with the archive entries as lineage."""
    frame = pd.concat([batch.frame for batch in batches], ignore_index=True)
    names, file_rows = ", ".join(batch.name for batch in batches), [batch.rows for batch in batches]
    trained = train_model(frame, cfg, source=names, file_rows=file_rows)
    sources = [DataSource(a.fingerprint, a.rows, a.source_name, a.path) for a in archived]
    ref = Registry(cfg).log_candidate(trained, collect_lineage(cfg, sources), trigger, actor)
    return TrainedCandidate(ref=ref, trained=trained)
