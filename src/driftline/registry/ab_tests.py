"""A/B tests as a rollout mode of the registry: the test's record (a registered-model tag), its start and its end,
each a transition in the audit log; arm B holds `challenger`, arm A is the champion at the start."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from driftline.errors import ConfigError, TransitionRefused
from driftline.registry.audit_events import Action, Actor, now, parse_time
from driftline.registry.audit_log import AuditLog
from driftline.registry.client import Connection
from driftline.registry.refs import CHALLENGER, MAX_TAG_VALUE, PASSED, RETIRED, TAG, ModelRef
from driftline.registry.transitions import TransitionLock, Transitions

AB_TEST = f"{TAG}ab.test"  # registered-model tag: the model's current (or last) test, as JSON
AB_TEST_ID = f"{TAG}ab.test_id"  # version tag on arm B: the test it is (was) in
AB_OUTCOME = f"{TAG}ab.outcome"  # version tag on arm B: how its test ended
GATE_VERDICT = f"{TAG}gate.verdict"
GATE_PASSED = (PASSED, "held")  # verdicts of a version that passed its gate (held: kept for a rollout)
RUNNING, STOPPED = "running", "stopped"
PROMOTED, KEPT, HALTED = "promoted", "kept", "halted"  # outcomes: B promoted; A kept (decided or by hand); halted


@dataclass(frozen=True)
class AbTest:
    """One A/B test: arm B (`version`) against arm A (`champion_version`, the champion when it began) on `share` of
    the units (by sha256 of B's version and the unit, as `rollout.route`), decided on `metrics`."""

    id: str
    version: str
    champion_version: str
    share: float
    metrics: list[str]
    guardrails: list[str]
    started_at: str  # ISO 8601, UTC
    max_days: int
    unit_column: str
    status: str = RUNNING
    outcome: str | None = None  # promoted | kept | halted, once stopped
    reason: str = ""  # why it began
    actor: str = ""  # who began it
    ended_at: str | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    evidence: dict = field(default_factory=dict)  # the verdict's figures it ended on

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def days_run(self, at: datetime | None = None) -> float:
        end = parse_time(self.ended_at) if self.ended_at else (at or datetime.now(UTC))
        return (end - parse_time(self.started_at)).total_seconds() / 86_400

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> AbTest:
        return cls(**values)

    @property
    def summary(self) -> str:
        return (
            f"A/B test {self.id}: v{self.version} (B, {self.share:.0%} of units) against v{self.champion_version} (A)"
        )


class AbTests:
    """The A/B tests of one model: read the record, begin one, end it. One at a time, under the transition lock."""

    def __init__(self, connection: Connection, audit: AuditLog, transitions: Transitions, lock: TransitionLock):
        self._connection, self._client, self._name = connection, connection.client, connection.name
        self._audit, self._transitions, self._lock = audit, transitions, lock

    def current(self) -> AbTest | None:
        """The model's running test, or the last one that ended; None if it never had one."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self._client.get_registered_model(self._name).tags
        except MlflowException:
            return None
        return AbTest.from_dict(json.loads(tags[AB_TEST])) if AB_TEST in tags else None

    def running(self) -> AbTest | None:
        test = self.current()
        return test if test is not None and test.running else None

    def start(
        self,
        version: str,
        share: float,
        metrics: list[str],
        guardrails: list[str],
        max_days: int,
        unit_column: str,
        reason: str,
        actor: Actor | None = None,
    ) -> AbTest:
        """Arm B gets `challenger` and the test its record, recorded in the audit log with who and why.

        Refused (ConfigError, one line): a share outside (0, 1), no metric, a version that does not exist, is
        retired, never passed its gate or is the champion; a test already running; a canary or shadow rollout on.
        """
        actor = actor or Actor.os_user()
        if not 0 < share < 1:
            raise ConfigError(f"--share must be between 0 and 1 (exclusive), got {share:g}")
        if not metrics:
            raise ConfigError("an A/B test needs a metric: --metric COLUMN (a column of the outcome files)")
        with self._lock.held():
            champion = self._connection.require_champion()
            self._refuse_second_test()
            self._refuse_rollout_on(version)
            ref = self._enterable(version, champion)
            started = now()
            test = AbTest(
                id=f"ab-{parse_time(started):%Y%m%dT%H%M%S}-v{version}",
                version=version,
                champion_version=champion.version,
                share=share,
                metrics=list(dict.fromkeys(metrics)),
                guardrails=[g for g in dict.fromkeys(guardrails) if g not in metrics],
                started_at=started,
                max_days=max_days,
                unit_column=unit_column,
                reason=reason,
                actor=str(actor),
            )
            self._client.set_registered_model_alias(self._name, CHALLENGER, ref.version)
            self._client.set_model_version_tag(self._name, ref.version, AB_TEST_ID, test.id)
            self._write(test)
            holders = self._connection.alias_holders()
            self._audit.record_transition(Action.ab_started, version, actor, reason, holders, holders, test.to_dict())
        return test

    def stop(
        self, promote: bool, reason: str, actor: Actor | None = None, evidence: dict | None = None, halted: bool = False
    ) -> tuple[AbTest, ModelRef | None]:
        """End the running test: B promoted (a transition whose evidence is the test) or A kept (B loses
        `challenger`); recorded. Returns the ended test and, after a promotion, the former champion."""
        actor = actor or Actor.os_user()
        test = self.running()
        if test is None:
            raise ConfigError(f"model {self._name!r} has no A/B test running; start one: driftline ab start")
        outcome = PROMOTED if promote else HALTED if halted else KEPT
        ended = replace(
            test,
            status=STOPPED,
            outcome=outcome,
            ended_at=now(),
            ended_by=str(actor),
            end_reason=reason,
            evidence=evidence or {},
        )
        as_evidence = {"ab_test": ended.to_dict()}
        former = None
        if promote:
            ref = self._connection.version_ref(test.version)
            self._connection.tag_version_and_run(
                ref, {GATE_VERDICT: PASSED, f"{TAG}gate.decided_at": ended.ended_at or now()}
            )
            former = self._transitions.promote(ref, actor, f"{test.summary}: {reason}", as_evidence)
        with self._lock.held():
            if not promote and self._connection.alias(CHALLENGER) == self._connection.version_ref(test.version):
                self._client.delete_registered_model_alias(self._name, CHALLENGER)
            self._client.set_model_version_tag(self._name, test.version, AB_OUTCOME, outcome)
            self._write(ended)
            holders = self._connection.alias_holders()
            self._audit.record_transition(Action.ab_stopped, test.version, actor, reason, holders, holders, as_evidence)
        return ended, former

    def halt(self, reason: str, actor: Actor | None, arm_b: str | None = None) -> None:
        """End the running test (if any; with `arm_b`, only if that is its arm B) as halted: a rollback or a
        retirement takes away an arm it compares."""
        test = self.running()
        if test is not None and arm_b in (None, test.version):
            self.stop(False, reason, actor, halted=True)

    def refuse_promotion(self, version: str) -> None:
        """While a test runs, arm A is frozen: no version but the champion itself may be promoted (`stop` promotes
        arm B through the transitions directly)."""
        test = self.running()
        if test is not None and version != test.champion_version:
            raise TransitionRefused(
                f"cannot promote v{version}: {test.summary} runs, and arm A stays champion until it ends "
                "(driftline ab stop --config C --promote|--keep --reason '...')"
            )

    def _write(self, test: AbTest) -> None:
        text = json.dumps(test.to_dict(), default=str)
        if len(text) > MAX_TAG_VALUE:  # the verdict's figures are the part that may grow: the audit run keeps them
            text = json.dumps({**test.to_dict(), "evidence": {"truncated": True}}, default=str)
        self._client.set_registered_model_tag(self._name, AB_TEST, text)

    def _refuse_second_test(self) -> None:
        running = self.running()
        if running is not None:
            raise ConfigError(
                f"{running.summary} is running since {running.started_at}: one test at a time per model; end it "
                "first: driftline ab stop --config C --promote|--keep --reason '...'"
            )

    def _refuse_rollout_on(self, version: str) -> None:
        mode = self._connection.cfg.rollout.mode
        held = self._connection.live_challenger()
        if mode != "off" and held is not None:
            raise ConfigError(
                f"a {mode} rollout of v{held.version} is on (rollout.mode {mode}, challenger v{held.version}): an A/B "
                f"test of v{version} cannot share the traffic; wait for its verdict or set rollout.mode: off"
            )

    def _enterable(self, version: str, champion: ModelRef) -> ModelRef:
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.get_model_version(self._name, version)
        except MlflowException:
            raise ConfigError(f"model {self._name!r} has no version {version}; see driftline status") from None
        tags = dict(found.tags)
        if tags.get(RETIRED) == "true":
            raise ConfigError(f"v{version} is retired: a retired version cannot enter an A/B test")
        verdict = tags.get(GATE_VERDICT)
        if verdict not in GATE_PASSED:
            raise ConfigError(
                f"v{version} never passed the gate (its verdict is {verdict or 'none'!r}): only a version that "
                "passed may enter an A/B test"
            )
        if version == champion.version:
            raise ConfigError(f"v{version} is the champion (arm A): test another version against it")
        return ModelRef(self._name, str(found.version), found.run_id)
