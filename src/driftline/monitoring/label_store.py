"""Delayed labels: label files read and checked as strictly as data files, kept in the label store (newest wins)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from driftline.config import DriftlineConfig, Task
from driftline.data.loading import DataBatch, load_batch
from driftline.data.storage import write_atomically
from driftline.errors import DataRejected
from driftline.validation.labels import LabelRules, as_classes, label_problems

ID, LABEL = "id", "label"  # the label store's columns, whatever the label files call them


LABEL_FILE, RECEIVED_AT = "label_file", "received_at"


def load_labels(path: str | Path, cfg: DriftlineConfig, classes: list | None) -> DataBatch:
    """Read a label file as strictly as a data file; `classes` are the training labels (None for regression).

    Rejected (DataRejected, one reason per problem): unreadable, the id or label column missing, missing ids, an id
    labeled twice in the file, labels that break the label rules of every labeled file (driftline.validation.labels:
    missing labels, not finite numbers for regression, classes the task or the champion does not allow).
    """
    id_column, label_column = cfg.label_id_column, cfg.label_column
    as_labels = cfg.dataset.model_copy(
        update={"id_column": id_column, "target": label_column, "features": {}, "event_time_column": None}
    )
    batch = load_batch(path, as_labels)
    frame, reasons = batch.frame, []
    missing = [column for column in (id_column, label_column) if column not in frame]
    if missing:
        raise DataRejected(
            str(path), [f"column {column!r} is missing (labels.id_column / labels.label_column)" for column in missing]
        )
    ids, labels = frame[id_column], frame[label_column]
    if ids.isna().any():
        reasons.append(f"column {id_column!r}: {int(ids.isna().sum())} rows without an id")
    repeated = ids[ids.duplicated(keep=False) & ids.notna()].unique()
    if len(repeated):
        examples = ", ".join(map(str, repeated[:3]))
        reasons.append(
            f"column {id_column!r}: {len(repeated)} ids are labeled more than once (e.g. {examples}); "
            "send one label per id, and a correction in a later file"
        )
    reasons += label_problems(frame, LabelRules.of(cfg, classes, column=label_column))
    if reasons:
        raise DataRejected(str(path), reasons)
    values = pd.to_numeric(labels) if cfg.dataset.task is Task.regression else as_classes(labels, classes or [])
    tidy = pd.DataFrame({ID: ids.to_numpy(dtype=object), LABEL: values.to_numpy()})
    return DataBatch(path=Path(path), frame=tidy, fingerprint=batch.fingerprint)  # ids and labels, renamed


# --- the label store ------------------------------------------------------------------------------------------------
def stored_fingerprints(store_dir: Path) -> set[str]:
    return {path.stem.split("-")[-1] for path in store_dir.glob("*.parquet")}


def store_labels(labels: DataBatch, store_dir: Path, now: datetime | None = None) -> Path | None:
    """Keep an accepted file's labels (once per content); file names sort by arrival, which decides who wins."""
    if labels.fingerprint in stored_fingerprints(store_dir):
        return None
    now = now or datetime.now(UTC)
    rows = labels.frame.assign(**{LABEL_FILE: labels.path.name, RECEIVED_AT: pd.Timestamp(now)})
    path = store_dir / f"{now:%Y%m%dT%H%M%S%fZ}-{labels.fingerprint}.parquet"
    return write_atomically(path, lambda temp: rows.to_parquet(temp, index=False))


def read_labels(store_dir: Path) -> pd.DataFrame:
    """Every stored label, one per id: a later file's label replaces an earlier one (a correction)."""
    files = sorted(store_dir.glob("*.parquet"), key=lambda path: path.name)
    if not files:
        return pd.DataFrame({ID: pd.Series(dtype=object), LABEL: [], LABEL_FILE: [], RECEIVED_AT: []})
    labels = pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)
    return labels.drop_duplicates(ID, keep="last").reset_index(drop=True)


ARCHIVED_IDS = "archived/ids.parquet"  # in the label store: ids whose labeled row is training data (archived)


def mark_archived(ids: pd.Series, store_dir: Path) -> None:
    done = store_dir / ARCHIVED_IDS
    known = pd.read_parquet(done)[ID] if done.exists() else pd.Series(dtype=object)
    all_ids = pd.DataFrame({ID: pd.concat([known, ids.astype(object)], ignore_index=True).drop_duplicates()})
    write_atomically(done, lambda temp: all_ids.to_parquet(temp, index=False))
