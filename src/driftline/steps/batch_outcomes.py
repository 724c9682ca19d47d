"""What continuous-training runs did with each batch's content, in the registry's landing ledger: the outcome the
flow's state hooks record (running, succeeded, failed, rejected), and whether a run's content was processed before.
"""

from __future__ import annotations

from pathlib import Path

from driftline.config import DriftlineConfig, load_config
from driftline.config.workspace import safe_name
from driftline.data import archive
from driftline.data.ledger import ANNOUNCED, FAILED, REJECTED, RUNNING, SUCCEEDED, Ledger, Outcome
from driftline.data.loading import DataBatch, fingerprint_file
from driftline.errors import DataRejected, RegistryUnavailable
from driftline.registry import registry_folders

REASON_CHARS = 300


def record_run(config: str, data: str, state: str, flow_run_id: str, error: BaseException | None = None) -> None:
    """One outcome of a run on `data` (running, succeeded, failed): a failure rejecting the file for its content
    (quarantined) is recorded as rejected, any other as failed with its first line, so the content is retried."""
    cfg = load_config(config)
    reason = None
    if error is not None:
        if state == FAILED and isinstance(error, DataRejected) and error.quarantined_to:
            state = REJECTED
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:REASON_CHARS]
    for ledger, sha256 in _ledgers_of_run(cfg, Path(data), flow_run_id):
        with ledger.locked():
            ledger.record(Outcome(sha256, state, data, flow_run_id, reason))


def _ledgers_of_run(cfg: DriftlineConfig, data: Path, flow_run_id: str) -> list[tuple[Ledger, str]]:
    """The ledger of the run's registry with the run's content; when the registry does not answer (often why the run
    failed), the ledgers of this model in the workspace where the content is in flight, so it is retried."""
    try:
        ledgers = [Ledger(registry_folders(cfg).landing_ledger)]
        in_flight_only = False
    except RegistryUnavailable:
        found = sorted(cfg.folders.registries.glob(f"{safe_name(cfg.registry.model_name)}-*/landing.jsonl"))
        ledgers, in_flight_only = [Ledger(path) for path in found], True
    content = fingerprint_file(data) if data.is_file() else None
    chosen = []
    for ledger in ledgers:
        sha256 = ledger.content_of_run(flow_run_id) or content
        if sha256 is not None and (not in_flight_only or ledger.state(sha256) in (ANNOUNCED, RUNNING)):
            chosen.append((ledger, sha256))
    return chosen


def processed_before(batch: DataBatch, cfg: DriftlineConfig, flow_run_id: str | None) -> str | None:
    """The name under which an earlier run processed this content successfully, or None: then this run processes it.

    A run that failed or is still running elsewhere does not count; content the ledger holds no outcome of (archived
    by training, or before outcomes were recorded) counts as processed when it is in the archive."""
    folders = registry_folders(cfg)
    outcomes = [
        record
        for record in Ledger(folders.landing_ledger).of_content(batch.fingerprint)
        if isinstance(record, Outcome) and record.flow_run_id != flow_run_id
    ]
    succeeded = next((outcome for outcome in outcomes if outcome.state == SUCCEEDED), None)
    if succeeded is not None:
        return Path(succeeded.data).name
    if outcomes:
        return None
    entry = archive.archived_entry(folders.archive, batch.fingerprint)
    return entry.source_name if entry else None
