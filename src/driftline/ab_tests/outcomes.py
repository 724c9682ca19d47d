"""Business outcomes of A/B tests: files of `<unit>, <metric columns>` taken in from the outcomes folder (a bad file
quarantined with its reasons), kept in the outcome store, and aggregated per unit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig, RegistryFolders
from driftline.config.workspace import safe_name
from driftline.data import landing
from driftline.data.loading import load_batch
from driftline.data.quarantine import quarantine_file
from driftline.data.storage import write_atomically
from driftline.errors import DataRejected

UNIT, OUTCOME_FILE, RECEIVED_AT = "unit", "outcome_file", "received_at"  # the store's own columns


def outcomes_folder(cfg: DriftlineConfig) -> Path:
    """Where outcome files arrive: ab.outcomes_folder, else `<workspace>/outcomes/<model_name>`."""
    folder = cfg.ab.outcomes_folder or cfg.folders.root / "outcomes" / safe_name(cfg.registry.model_name)
    return folder.resolve()


def store_dir(folders: RegistryFolders) -> Path:
    """Where the outcomes taken in are kept: beside the model's prediction log and label store."""
    return folders.root / "outcome-store"


def unit_column(cfg: DriftlineConfig) -> str:
    """The column naming a test's unit: ab.unit_column, else dataset.id_column."""
    return cfg.ab.unit_column or cfg.dataset.id_column or ""


@dataclass
class OutcomeIntake:
    """What one intake took: rows per accepted file, files seen before, rejected files (now quarantined) and rows
    skipped per reason."""

    accepted: dict[str, int] = field(default_factory=dict)
    already_received: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, rows: int) -> None:
        if rows:
            self.skipped[reason] = self.skipped.get(reason, 0) + rows


def load_outcomes(
    path: Path, cfg: DriftlineConfig, unit: str, wanted: list[str]
) -> tuple[pd.DataFrame, str, dict[str, int]]:
    """One outcome file as the store keeps it (`unit` as text, the other columns as given), its fingerprint and the
    rows skipped per reason (no unit). `wanted`: the running test's metric columns; a file with none of them (or
    with no column besides the unit) is rejected, as is a file that cannot be read or has no unit column."""
    as_outcomes = {"id_column": unit, "target": unit, "features": {}, "event_time_column": None}
    batch = load_batch(path, cfg.dataset.model_copy(update=as_outcomes))
    frame = batch.frame
    if unit not in frame:
        raise DataRejected(str(path), [f"column {unit!r} is missing (ab.unit_column, else dataset.id_column)"])
    measured = [column for column in frame if column != unit]
    if not measured:
        raise DataRejected(str(path), [f"no metric column beside {unit!r}: send `{unit}, <metric columns>`"])
    if wanted and not set(wanted) & set(measured):
        raise DataRejected(str(path), [f"none of the running test's metrics {wanted} is a column (found {measured})"])
    no_unit = frame[unit].isna()
    kept = frame[~no_unit].rename(columns={unit: UNIT}).reset_index(drop=True)
    return kept, batch.fingerprint, {f"rows without a {unit!r}": int(no_unit.sum())}


def receive_outcomes(cfg: DriftlineConfig, store_dir: Path, wanted: list[str]) -> OutcomeIntake:
    """The settled files of the outcomes folder: each kept in the store once (by content) and filed away to done/;
    a bad one quarantined with its reasons while the others still count."""
    folder, unit, intake = outcomes_folder(cfg), unit_column(cfg), OutcomeIntake()
    known = {path.stem.split("-")[-1] for path in store_dir.glob("*.parquet")}
    for path in landing.settled_files(folder, cfg.landing.stable_seconds, time.time()):
        try:
            frame, fingerprint, skipped = load_outcomes(path, cfg, unit, wanted)
        except DataRejected as rejected:
            destination = quarantine_file(path, cfg.folders.quarantine, rejected.reasons, {"stage": "outcomes"})
            intake.rejected.append(str(DataRejected(rejected.path, rejected.reasons, str(destination))))
            continue
        for reason, rows in skipped.items():
            intake.skip(f"{path.name}: {reason}", rows)
        if fingerprint in known:
            intake.already_received.append(path.name)
        else:
            received = datetime.now(UTC)
            rows = frame.assign(**{OUTCOME_FILE: path.name, RECEIVED_AT: pd.Timestamp(received)})
            target = store_dir / f"{received:%Y%m%dT%H%M%S%fZ}-{fingerprint}.parquet"
            write_atomically(target, lambda temp, rows=rows: rows.to_parquet(temp, index=False))
            known.add(fingerprint)
            intake.accepted[path.name] = len(frame)
        landing.file_away(path, folder / "done")
    return intake


def waiting_files(cfg: DriftlineConfig) -> list[Path]:
    """Outcome files in the folder that the next intake takes (`ab status` counts them; it takes nothing)."""
    return landing.settled_files(outcomes_folder(cfg), 0, time.time())


def read_outcomes(store_dir: Path, since: str | None = None) -> pd.DataFrame:
    """Every stored outcome row received at or after `since` (ISO time), oldest file first."""
    files = sorted(store_dir.glob("*.parquet"), key=lambda path: path.name)
    frames = [pd.read_parquet(path) for path in files]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({UNIT: pd.Series(dtype=object)})
    if since is not None and RECEIVED_AT in frame:
        frame = frame[pd.to_datetime(frame[RECEIVED_AT], utc=True) >= pd.Timestamp(since)]
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class PerUnit:
    """Each metric per unit (index: the unit as text), and the rows skipped on the way, per reason."""

    values: pd.DataFrame
    skipped: dict[str, int]


def per_unit(outcomes: pd.DataFrame, columns: list[str], aggregation: dict[str, str]) -> PerUnit:
    """The outcome rows combined per unit: each column summed (or averaged, per ab.aggregation). A value that is not
    a number is skipped and counted; a column no file has stays all-missing and is counted once per row."""
    skipped: dict[str, int] = {}
    units = outcomes[UNIT].astype(str) if len(outcomes) else pd.Series(dtype=object)
    combined = {}
    for column in columns:
        if column not in outcomes:
            if len(outcomes):
                skipped[f"metric {column!r} in no outcome file"] = len(outcomes)
            combined[column] = pd.Series(np.nan, index=pd.Index(units.unique(), name=UNIT), dtype=float)
            continue
        raw = outcomes[column]
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        values[~np.isfinite(values)] = np.nan
        not_numbers = int((values.isna() & raw.notna()).sum())
        if not_numbers:
            skipped[f"metric {column!r} not a number"] = not_numbers
        if raw.isna().any():
            skipped[f"metric {column!r} missing"] = int(raw.isna().sum())
        grouped = values.groupby(units.to_numpy())
        how = aggregation.get(column, "sum")
        combined[column] = grouped.sum(min_count=1) if how == "sum" else grouped.mean()
    frame = pd.DataFrame(combined)
    frame.index = frame.index.astype(str)
    frame.index.name = UNIT
    return PerUnit(frame, skipped)


def past_outcomes(cfg: DriftlineConfig, store_dir: Path, metric: str) -> np.ndarray:
    """The metric per unit in every outcome kept so far and in the files waiting (read, not taken in): what a plan
    measures its spread on. A waiting file that cannot be read is left for the intake to quarantine."""
    unit, frames = unit_column(cfg), [read_outcomes(store_dir)]
    for path in waiting_files(cfg):
        try:
            frames.append(load_outcomes(path, cfg, unit, [metric])[0])
        except DataRejected:
            continue
    found = per_unit(pd.concat(frames, ignore_index=True), [metric], cfg.ab.aggregation).values[metric]
    return found.dropna().to_numpy(dtype=float)
