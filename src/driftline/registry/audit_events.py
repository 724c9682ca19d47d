"""The audit trail's types: who moved which alias when, why and on what evidence; who was champion at a time."""

from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Action(StrEnum):
    registered = "registered"
    promoted = "promoted"
    refused = "refused"
    held = "held"  # passed its gate, kept as challenger for a shadow or canary rollout
    approved = "approved"
    rejected = "rejected"
    rolled_back = "rolled_back"
    retired = "retired"
    archive_removed = "archive_removed"  # a batch taken out of the retraining window: no version, no alias moves
    ab_started = "ab_started"  # an A/B test of the version (arm B) against the champion (arm A) began
    ab_stopped = "ab_stopped"  # an A/B test ended: promoted, kept, or halted (SRM, guardrail, max duration, rollback)


@dataclass(frozen=True)
class Actor:
    """Who made a transition: a Prefect flow run (`flow-run`) or a person at a terminal (`user`)."""

    kind: str
    name: str
    id: str | None = None

    @classmethod
    def os_user(cls) -> Actor:
        try:
            return cls("user", getpass.getuser())
        except OSError:  # no user name in this environment (some containers)
            return cls("user", "unknown")

    @classmethod
    def flow_run(cls, name: str, run_id: str) -> Actor:
        return cls("flow-run", name, run_id)

    @classmethod
    def approver(cls, name: str) -> Actor:
        return cls("approver", name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" + (f" ({self.id})" if self.id else "")


@dataclass(frozen=True)
class AliasHolders:
    """Who held `champion` and `previous`: before and after one transition."""

    champion: str | None
    previous: str | None


@dataclass(frozen=True)
class AuditEvent:
    at: str  # ISO 8601 in UTC with microseconds: sorts as text
    action: Action
    version: str  # "" for an event about the model's data (archive_removed)
    actor: Actor
    reason: str
    before: AliasHolders
    after: AliasHolders
    evidence: dict = field(default_factory=dict)
    run_id: str | None = None  # the audit run holding this event

    def to_dict(self) -> dict:
        described = asdict(self)
        return {**described, "action": str(self.action), "actor": str(self.actor)}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    """An ISO time as a user types it; without a zone it is read as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def champion_at(events: list[AuditEvent], moment: datetime) -> AuditEvent | None:
    """The last transition at or before `moment`: its `after.champion` is who served then (None: nobody yet)."""
    earlier = [event for event in events if parse_time(event.at) <= moment]
    return max(earlier, key=lambda event: event.at, default=None)


@dataclass(frozen=True)
class Approval:
    """A person's answer to a manual gate (or the timeout's, which rejects)."""

    approved: bool
    approver: str
    reason: str
    timed_out: bool = False

    @property
    def action(self) -> Action:
        return Action.approved if self.approved else Action.rejected


@dataclass(frozen=True)
class Rollback:
    """What one rollback did; `changed` is False when it had been done already (a repeat changes nothing)."""

    changed: bool
    champion: str
    rolled_back_from: str | None
    note: str
