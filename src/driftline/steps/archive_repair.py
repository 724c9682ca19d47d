"""Archive repair: a batch taken out of every future retraining window, its file moved to quarantine, the removal
recorded in the audit log with the versions trained on it. Calls the `Registry`: the registry never imports it."""

from __future__ import annotations

from dataclasses import dataclass

from driftline.config import DriftlineConfig
from driftline.data import archive
from driftline.registry import TAG, Registry, registry_folders
from driftline.registry.audit_events import Action, Actor


@dataclass(frozen=True)
class Removal:
    entry: archive.ArchivedBatch  # as the index holds it now: its path is the quarantined copy
    changed: bool  # False: it had been removed before
    trained_versions: list[str]  # versions whose lineage names the batch: `driftline reproduce` still finds it
    audit_run_id: str | None


def remove_batch(cfg: DriftlineConfig, fingerprint: str, reason: str, actor: Actor) -> Removal:
    """Take the archived batch `fingerprint` (or a unique prefix of it) out of every future retraining window.

    A repeat changes nothing, except that it records the audit event if an earlier removal could not (the registry
    was down after the file had moved). DriftlineError names an unknown or ambiguous fingerprint.
    """
    archive_dir = registry_folders(cfg).archive
    entry, changed = archive.remove_archived_batch(archive_dir, fingerprint, reason, str(actor), cfg.folders.quarantine)
    registry = Registry(cfg)
    trained = [
        info.version
        for info in registry.versions()
        if entry.fingerprint in info.tags.get(f"{TAG}data_fingerprints", "").split(",")
    ]
    recorded = next(
        (
            event
            for event in registry.audit_log()
            if event.action is Action.archive_removed and event.evidence.get("fingerprint") == entry.fingerprint
        ),
        None,
    )
    if recorded is None:
        recorded = registry.record_archive_removal(
            entry.removal_reason or reason,
            actor,
            {
                "fingerprint": entry.fingerprint,
                "source_name": entry.source_name,
                "rows": entry.rows,
                "archived_at": entry.archived_at,
                "archived_by": entry.archived_by,
                "quarantined_to": str(entry.location(archive_dir).resolve()),
                "trained_versions": trained,
            },
        )
    return Removal(entry, changed, trained, recorded.run_id)
