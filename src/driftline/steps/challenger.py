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
    sources = ", ".join(entry.source_name for entry in archived)
    trained = train_model(frame, cfg, source=sources, file_rows=[batch.rows for batch in batches])
    lineage = collect_lineage(cfg, [DataSource(a.fingerprint, a.rows, a.source_name, a.path) for a in archived])
    ref = Registry(cfg).log_candidate(trained, lineage, trigger, actor)
    return TrainedCandidate(ref=ref, trained=trained)
