"""Alias transitions, one at a time under a file lock: promote, roll back, retire, hold for rollout, approvals."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from driftline import file_lock
from driftline.errors import NoChampion, TransitionRefused
from driftline.evaluation.gate import GateDecision
from driftline.registry.audit_events import Action, Actor, AliasHolders, Approval, Rollback, now
from driftline.registry.audit_log import AuditLog
from driftline.registry.client import Connection
from driftline.registry.history import History
from driftline.registry.identity import registry_folders
from driftline.registry.refs import (
    AUDIT,
    CHALLENGER,
    CHAMPION,
    MAX_TAG_VALUE,
    PASSED,
    PREVIOUS,
    RETIRED,
    TAG,
    ModelRef,
)

PENDING_PROMOTION = f"{TAG}promotion.pending"  # registered-model tag: a promotion begun and not yet finished

log = logging.getLogger("driftline.registry")


class TransitionLock:
    """One alias transition of a model at a time among processes sharing the workspace (an OS file lock,
    released by the kernel if the holder dies)."""

    def __init__(self, connection: Connection):
        self._connection = connection

    @property
    def path(self) -> Path:
        return registry_folders(self._connection.cfg, self._connection).locks / "transitions.lock"

    @contextmanager
    def held(self) -> Iterator[None]:
        with file_lock.held(self.path):
            yield


class Transitions:
    """Every move of one model's aliases, each recorded in the audit log with the holders before and after."""

    def __init__(self, connection: Connection, audit: AuditLog, history: History, lock: TransitionLock):
        self._connection, self._client, self._name = connection, connection.client, connection.name
        self._audit, self._history, self._lock = audit, history, lock

    def promote(
        self,
        candidate: ModelRef,
        actor: Actor | None = None,
        reason: str = "passed the gate",
        evidence: dict | None = None,
    ) -> ModelRef | None:
        """Move `champion` to the candidate and the former champion to `previous`; returns the former champion.

        Aliases are unique per model, so `champion` moves in one registry write: never two champions, never none.
        Transitions take the registry lock one at a time, so `previous` and the audit log's before/after are what
        really held. A retired version, or one whose recorded gate verdict is not a pass, is refused. The intent is
        written first (a registered-model tag): a promotion interrupted midway is finished by the next transition.
        """
        with self._lock.held():
            self._finish_interrupted_promotion()
            self._refuse_retired(candidate.version, "promote")
            self._refuse_ungated(candidate.version)
            before = self._connection.alias_holders()
            if before.champion == candidate.version:  # a retried task: done already, recorded already
                return self._connection.alias(PREVIOUS)
            former = self._connection.champion()
            intent = {
                "version": candidate.version,
                "run_id": candidate.run_id,
                "at": now(),
                "reason": reason,
                "actor": asdict(actor or Actor.os_user()),
                "before": asdict(before),
                "evidence": {"run_id": candidate.run_id, **(evidence or {})},
            }
            self._client.set_registered_model_tag(self._name, PENDING_PROMOTION, json.dumps(intent, default=str))
            self._complete_promotion(intent)
            return former

    def _complete_promotion(self, intent: dict) -> None:
        """The alias moves and the audit record of a promotion; each step may be repeated without harm."""
        version, before = intent["version"], AliasHolders(**intent["before"])
        if before.champion is not None and before.champion != version:
            self._client.set_registered_model_alias(self._name, PREVIOUS, before.champion)
        self._client.set_registered_model_alias(self._name, CHAMPION, version)
        challenger = self._connection.alias(CHALLENGER)
        if challenger is not None and challenger.version == version:
            self._client.delete_registered_model_alias(self._name, CHALLENGER)
        recorded = [
            e
            for e in self._audit.events()
            if e.action is Action.promoted and e.version == version and e.at >= intent["at"]
        ]
        if not recorded:
            self._audit.record_transition(
                Action.promoted,
                version,
                Actor(**intent["actor"]),
                intent["reason"],
                before,
                self._connection.alias_holders(),
                intent["evidence"],
            )
        self._client.delete_registered_model_tag(self._name, PENDING_PROMOTION)

    def interrupted_promotion(self) -> dict | None:
        """The intent of a promotion that began and did not finish (a crash, an outage midway), if any."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self._client.get_registered_model(self._name).tags
        except MlflowException:
            return None
        return json.loads(tags[PENDING_PROMOTION]) if PENDING_PROMOTION in tags else None

    def _finish_interrupted_promotion(self) -> None:
        intent = self.interrupted_promotion()
        if intent is not None:
            log.warning("finishing the interrupted promotion of v%s begun at %s", intent["version"], intent["at"])
            self._complete_promotion(intent)

    def _refuse_ungated(self, version: str) -> None:
        verdict = self._connection.version_tags(version).get(f"{TAG}gate.verdict")
        if verdict is not None and verdict != PASSED:
            raise TransitionRefused(f"cannot promote v{version}: its gate verdict is {verdict!r}, not a pass")

    def _refuse_retired(self, version: str, doing: str) -> None:
        tags = self._connection.version_tags(version)
        if tags.get(RETIRED) == "true":
            raise TransitionRefused(
                f"cannot {doing} v{version}: it was retired ({tags.get(f'{AUDIT}retired.reason', 'no reason')}); "
                "bring it back only with: driftline rollback --to VERSION --override-retired --reason '...'"
            )

    def record_approval(self, candidate: ModelRef, approval: Approval) -> None:
        """The approver's answer on the version (tags) and in the audit log; the aliases do not move here.

        A rejection turns the version's gate verdict to `refused`: the automatic checks passed, the gate did not.
        """
        if not approval.approved:
            self._client.set_model_version_tag(self._name, candidate.version, f"{TAG}gate.verdict", "refused")
            self._client.set_tag(candidate.run_id, f"{TAG}gate.verdict", "refused")
        for key, value in {
            "verdict": str(approval.action),
            "by": approval.approver,
            "reason": approval.reason,
            "timed_out": str(approval.timed_out).lower(),
        }.items():
            self._client.set_model_version_tag(
                self._name, candidate.version, f"{TAG}approval.{key}", value[:MAX_TAG_VALUE]
            )
        self._audit.record_unmoved(
            approval.action,
            candidate.version,
            Actor.approver(approval.approver),
            approval.reason,
            {"run_id": candidate.run_id, "timed_out": approval.timed_out},
        )

    def hold_for_rollout(self, candidate: ModelRef, decision: GateDecision, actor: Actor | None = None) -> None:
        """A candidate that passed its gate stays `challenger` for a shadow or canary rollout (recorded)."""
        self._set_verdict(candidate, decision.verdict, {f"{TAG}rollout.mode": decision.held_for or ""})
        evidence = decision.evidence(candidate.run_id)
        self._audit.record_unmoved(Action.held, candidate.version, actor, decision.summary, evidence)

    def end_rollout(
        self, challenger: ModelRef, promote: bool, reason: str, evidence: dict, actor: Actor | None = None
    ) -> ModelRef | None:
        """The rollout's verdict: promote the challenger, or drop it (alias removed, verdict `refused`, recorded)."""
        self._set_verdict(challenger, "promoted" if promote else "refused", {f"{TAG}rollout.verdict": reason[:500]})
        if promote:
            return self.promote(challenger, actor, reason, evidence)
        with self._lock.held():
            if self._connection.alias(CHALLENGER) == challenger:
                self._client.delete_registered_model_alias(self._name, CHALLENGER)
        self._audit.record_unmoved(Action.refused, challenger.version, actor, reason, evidence)
        return None

    def _set_verdict(self, ref: ModelRef, verdict: str, extra: dict[str, str]) -> None:
        self._connection.tag_version_and_run(
            ref, {f"{TAG}gate.verdict": verdict, f"{TAG}gate.decided_at": datetime.now(UTC).isoformat(), **extra}
        )

    def rollback(
        self,
        reason: str,
        actor: Actor | None = None,
        to: str | None = None,
        override_retired: bool = False,
        evidence: dict | None = None,
    ) -> Rollback:
        """Move `champion` back to `previous` (or to `to`) in one alias write; `previous` is then cleared.

        Clearing `previous` makes a repeated rollback a no-op instead of a flip back to the version just left;
        the next promotion sets `previous` again. Repeats (and rolling back to the current champion) change nothing.
        """
        with self._lock.held():
            self._finish_interrupted_promotion()
            before = self._connection.alias_holders()
            if before.champion is None:
                raise NoChampion(f"model {self._name!r} has no champion: nothing to roll back")
            target = to or before.previous
            if target is None:
                last = self._audit.events()[-1:]
                if last and last[0].action is Action.rolled_back and last[0].after.champion == before.champion:
                    return Rollback(
                        False,
                        before.champion,
                        last[0].before.champion,
                        f"already rolled back to v{before.champion} at {last[0].at}",
                    )
                raise TransitionRefused(
                    f"model {self._name!r} has no `previous` version to roll back to; name one: --to VERSION"
                )
            if target == before.champion:
                return Rollback(False, target, None, f"v{target} is already champion")
            if not self._history.was_champion(target):
                raise TransitionRefused(f"v{target} never served as champion; roll back only to a former champion")
            if not override_retired:
                self._refuse_retired(target, "roll back to")
            tags = self._connection.version_tags(target)
            overridden = tags.get(RETIRED) == "true"
            if overridden:
                self._client.set_model_version_tag(self._name, target, RETIRED, "false")
            self._client.set_registered_model_alias(self._name, CHAMPION, target)
            if before.previous is not None:
                self._client.delete_registered_model_alias(self._name, PREVIOUS)
            self._audit.record_transition(
                Action.rolled_back,
                target,
                actor,
                reason,
                before,
                self._connection.alias_holders(),
                {"from_version": before.champion, "retirement_overridden": overridden, **(evidence or {})},
            )
            return Rollback(True, target, before.champion, f"v{before.champion} → v{target}")

    def retire(self, version: str, reason: str, actor: Actor | None = None) -> bool:
        """Take a version out of service: no alias points to it afterwards. False when it was retired already."""
        with self._lock.held():
            self._finish_interrupted_promotion()
            tags = self._connection.version_tags(version)
            if tags.get(RETIRED) == "true":
                return False
            before = self._connection.alias_holders()
            if before.champion == version:
                raise TransitionRefused(
                    f"v{version} is the champion; roll back first (driftline rollback --config C --reason '...'), "
                    "then retire it"
                )
            registered = self._client.get_registered_model(self._name)
            dropped = sorted(alias for alias, held in registered.aliases.items() if str(held) == version)
            for alias in dropped:
                self._client.delete_registered_model_alias(self._name, alias)
            self._client.set_model_version_tag(self._name, version, RETIRED, "true")
            self._audit.record_transition(
                Action.retired,
                version,
                actor,
                reason,
                before,
                self._connection.alias_holders(),
                {"aliases_removed": dropped},
            )
            return True
