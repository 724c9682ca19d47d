"""The commands of governance: status, check, audit, rollback, retire, reproduce."""

from __future__ import annotations

import argparse
import json
import time

from rich.markup import escape

from driftline.cli.render import audit_table, console, landing_lines, reproduction_table, versions_table
from driftline.config import load_config
from driftline.config.workspace import short_id
from driftline.data.landing import complete_files
from driftline.data.ledger import Ledger, landing_status
from driftline.errors import DriftlineError, InvariantViolated


def cmd_status(args: argparse.Namespace) -> None:
    from driftline.registry import Registry
    from driftline.steps.estimate_review import estimator_states

    cfg = load_config(args.config)
    registry = Registry(cfg)
    folders = registry.folders
    versions = registry.versions()
    estimators = estimator_states(cfg, versions, folders.root)
    landing = landing_status(
        Ledger(folders.landing_ledger), complete_files(cfg.folders.landing, cfg.landing.stable_seconds, time.time())
    )
    if args.json:
        champion = registry.champion()
        print(
            json.dumps(
                {
                    "model": cfg.registry.model_name,
                    "tracking_uri": cfg.tracking_uri,
                    "registry_id": folders.registry_id,
                    "state": str(folders.root),
                    "champion": champion.version if champion else None,
                    "versions": [
                        info.to_dict() | {"estimator": estimators[info.version].to_dict()} for info in versions
                    ],
                    "landing": landing.to_dict(),
                },
                indent=2,
            )
        )
        return
    console.print(versions_table(cfg))
    for info in versions:
        if info.aliases:  # the versions in service or waiting: the others' estimators decide nothing
            console.print(f"{', '.join(info.aliases)}: {escape(estimators[info.version].line())}", soft_wrap=True)
    console.print(
        f"tracking: {cfg.tracking_uri} (registry {short_id(folders.registry_id)}; "
        f"local state in {folders.root})\n  full lineage per version: driftline status --json"
    )
    for line in landing_lines(cfg, landing):
        console.print(line, soft_wrap=True)


def cmd_check(args: argparse.Namespace) -> None:
    from driftline.governance.invariants import check_registry
    from driftline.registry import Registry

    cfg = load_config(args.config)
    violations = check_registry(Registry(cfg))
    if args.json:
        print(
            json.dumps(
                {
                    "model": cfg.registry.model_name,
                    "ok": not violations,
                    "violations": [v.to_dict() for v in violations],
                },
                indent=2,
            )
        )
    else:
        for violation in violations:
            console.print(f"VIOLATED {violation}")
    if violations:
        raise InvariantViolated(
            f"{len(violations)} registry invariant(s) violated for {cfg.registry.model_name}: {violations[0]}"
        )
    if not args.json:
        console.print(f"registry of {cfg.registry.model_name} consistent with its audit log: every invariant holds")


def cmd_audit(args: argparse.Namespace) -> None:
    from driftline.registry import Registry
    from driftline.registry.audit_events import champion_at, parse_time

    cfg = load_config(args.config)
    events = Registry(cfg).audit_log()
    try:
        moment = parse_time(args.at) if args.at else None
    except ValueError:
        raise DriftlineError(f"--at {args.at!r} is not an ISO time such as 2026-03-01T12:00:00+00:00") from None
    serving = champion_at(events, moment) if moment else None
    if args.json:
        answer = {"model": cfg.registry.model_name, "events": [event.to_dict() for event in events]}
        if moment:
            answer |= {
                "at": moment.isoformat(),
                "champion": serving.after.champion if serving else None,
                "since": serving.to_dict() if serving else None,
            }
        print(json.dumps(answer, indent=2, default=str))
        return
    if moment:
        if serving is None or serving.after.champion is None:
            console.print(f"no champion at {moment.isoformat()}")
        else:
            console.print(
                f"champion at {moment.isoformat()}: v{serving.after.champion} "
                f"(since {serving.at}: {serving.action} v{serving.version} by {serving.actor})"
            )
        return
    console.print(audit_table(cfg, events))


def cmd_rollback(args: argparse.Namespace) -> None:
    from driftline.flows.params import RollbackParams
    from driftline.flows.rollback import rollback

    outcome = rollback(
        RollbackParams(
            config=args.config, reason=args.reason, to_version=args.to, override_retired=args.override_retired
        )
    )
    if outcome.changed:
        console.print(f"rolled back: champion v{outcome.champion_version} (was v{outcome.rolled_back_from})")
    else:
        console.print(f"nothing to do: {outcome.note}")


def cmd_retire(args: argparse.Namespace) -> None:
    from driftline.registry import Registry
    from driftline.registry.audit_events import Actor

    cfg = load_config(args.config)
    if Registry(cfg).retire(args.version, args.reason, Actor.os_user()):
        console.print(f"retired v{args.version}: no alias points to it; promoting it again needs --override-retired")
    else:
        console.print(f"nothing to do: v{args.version} was retired already")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from driftline.governance.reproduce import reproduce

    cfg = load_config(args.config)
    with console.status(f"reproducing v{args.version} from its archived data and recorded config"):
        found = reproduce(cfg, args.version)
    if found.missing:
        raise DriftlineError(f"cannot reproduce v{args.version}: missing {'; '.join(found.missing)}")
    console.print(reproduction_table(args.version, found))
    for note in found.notes:
        console.print(f"  environment: {note}")
    if not found.matches:
        raise DriftlineError(f"v{args.version} did not reproduce within {found.tolerance:g}: see the table above")
    console.print(f"v{args.version} reproduced: every holdout metric within {found.tolerance:g}")
