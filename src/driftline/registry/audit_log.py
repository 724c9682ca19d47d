"""The audit log: one MLflow run per registry transition in the audit experiment, never edited, and its reading."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace

from driftline.registry.audit_events import Action, Actor, AliasHolders, AuditEvent, now
from driftline.registry.client import Connection
from driftline.registry.refs import AUDIT, MAX_TAG_VALUE


def _audit_event(run) -> AuditEvent:
    tags = run.data.tags

    def tag(name: str) -> str | None:
        return tags.get(f"{AUDIT}{name}") or None

    return AuditEvent(
        at=tags[f"{AUDIT}at"],
        action=Action(tags[f"{AUDIT}action"]),
        version=tags[f"{AUDIT}version"],
        actor=Actor(tags[f"{AUDIT}actor_kind"], tags[f"{AUDIT}actor"], tag("actor_id")),
        reason=tags.get(f"{AUDIT}reason", ""),
        before=AliasHolders(tag("champion_before"), tag("previous_before")),
        after=AliasHolders(tag("champion_after"), tag("previous_after")),
        evidence=json.loads(tags.get(f"{AUDIT}evidence") or "{}"),
        run_id=run.info.run_id,
    )


class AuditLog:
    """Every transition of one model, recorded beside its versions; `transition_lock` holds the aliases still."""

    def __init__(self, connection: Connection, transition_lock: Callable[[], AbstractContextManager[None]]):
        self._connection, self._client, self._name = connection, connection.client, connection.name
        self._transition_lock = transition_lock

    @property
    def experiment_id(self) -> str:
        return self._connection.experiment_named(
            self._connection.cfg.audit_experiment_name,
            tags={"driftline.purpose": "audit log: one run per registry transition, never edited"},
        )

    def record_transition(
        self,
        action: Action,
        version: str,
        actor: Actor | None,
        reason: str,
        before: AliasHolders,
        after: AliasHolders,
        evidence: dict | None = None,
    ) -> AuditEvent:
        """Append one event to the audit log (its own MLflow run) and tag the model version with it.

        The log lives in the registry's own backend, beside the versions it describes: it is as durable and as
        shared as the registry. Runs of the audit experiment are only ever created, never updated.
        """
        actor = actor or Actor.os_user()
        event = AuditEvent(now(), action, version, actor, reason, before, after, evidence or {})
        evidence_json = json.dumps(event.evidence, default=str, sort_keys=True)
        tags = {
            f"{AUDIT}model": self._name,
            f"{AUDIT}action": str(action),
            f"{AUDIT}version": version,
            f"{AUDIT}at": event.at,
            f"{AUDIT}actor": actor.name,
            f"{AUDIT}actor_kind": actor.kind,
            f"{AUDIT}actor_id": actor.id or "",
            f"{AUDIT}reason": reason[:MAX_TAG_VALUE],
            f"{AUDIT}champion_before": before.champion or "",
            f"{AUDIT}previous_before": before.previous or "",
            f"{AUDIT}champion_after": after.champion or "",
            f"{AUDIT}previous_after": after.previous or "",
            f"{AUDIT}evidence": evidence_json if len(evidence_json) <= MAX_TAG_VALUE else "{}",
        }
        run_name = f"{action}-{self._name}" + (f"-v{version}" if version else "")
        run = self._client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self._client.log_text(run.info.run_id, json.dumps(event.to_dict(), indent=2, default=str), "audit_event.json")
        self._client.set_terminated(run.info.run_id)
        if not version:  # an event about the model's data (an archive removal) tags no version
            return replace(event, run_id=run.info.run_id)
        for key, value in {"at": event.at, "by": str(actor), "reason": reason[:MAX_TAG_VALUE]}.items():
            self._client.set_model_version_tag(self._name, version, f"{AUDIT}{action}.{key}", value)
        self._client.set_model_version_tag(self._name, version, f"{AUDIT}last_action", str(action))
        return replace(event, run_id=run.info.run_id)

    def record_unmoved(
        self, action: Action, version: str, actor: Actor | None, reason: str, evidence: dict | None = None
    ) -> AuditEvent:
        """An event that moves no alias, recorded under the transition lock: the holders it states are current."""
        with self._transition_lock():
            holders = self._connection.alias_holders()
            return self.record_transition(action, version, actor, reason, holders, holders, evidence)

    def events(self) -> list[AuditEvent]:
        """Every recorded transition of this model, oldest first."""
        experiment = self._client.get_experiment_by_name(self._connection.cfg.audit_experiment_name)
        if experiment is None:
            return []
        runs, token = [], None
        while True:
            page = self._client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{AUDIT}model` = '{self._name}'",
                order_by=[f"tags.`{AUDIT}at` ASC"],
                max_results=1000,
                page_token=token,
            )
            runs += list(page)
            token = page.token
            if not token:
                break
        return sorted((_audit_event(run) for run in runs), key=lambda event: event.at)
