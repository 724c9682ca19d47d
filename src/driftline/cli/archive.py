"""The commands of the archive: list the archived batches, take one out of every future retraining window."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from driftline.cli.render import archive_table, console
from driftline.config import load_config
from driftline.registry import registry_folders


def cmd_archive_list(args: argparse.Namespace) -> None:
    from driftline.data.archive import read_archive_index

    cfg = load_config(args.config)
    archive_dir = registry_folders(cfg).archive
    entries = read_archive_index(archive_dir)
    if args.json:
        print(
            json.dumps(
                {
                    "model": cfg.registry.model_name,
                    "archive": str(archive_dir),
                    "batches": [
                        {**asdict(entry), "in_use": entry.in_use, "file": str(entry.location(archive_dir).resolve())}
                        for entry in entries
                    ],
                },
                indent=2,
            )
        )
        return
    console.print(archive_table(cfg, archive_dir, entries))
    console.print(
        "take a batch out of every future retraining window: "
        f"driftline archive remove --config {args.config} --fingerprint F --reason TEXT"
    )


def cmd_archive_remove(args: argparse.Namespace) -> None:
    from driftline.registry.audit_events import Actor
    from driftline.steps.archive_repair import remove_batch

    cfg = load_config(args.config)
    removal = remove_batch(cfg, args.fingerprint, args.reason, Actor.os_user())
    entry = removal.entry
    where = entry.location(registry_folders(cfg).archive).resolve()
    if not removal.changed:
        console.print(
            f"nothing to do: {entry.source_name} was removed already at {entry.removed_at} by "
            f"{entry.removed_by} ({entry.removal_reason}); its file is at {where}"
        )
        return
    trained = ", ".join(f"v{version}" for version in removal.trained_versions)
    lineage = f"; {trained} trained on it and still reproduce from there" if trained else ""
    console.print(
        f"removed {entry.source_name} ({entry.fingerprint[:12]}, {entry.rows} rows) from every future "
        f"retraining window: moved to {where}, recorded in the audit log{lineage}"
    )
