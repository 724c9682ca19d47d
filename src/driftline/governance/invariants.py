"""The registry's invariants, checked against the audit log: what `driftline check` reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from driftline.registry import CHAMPION, PASSED, PREVIOUS, TAG, Registry, VersionInfo
from driftline.registry.audit_events import AliasHolders, AuditEvent


@dataclass(frozen=True)
class Violation:
    rule: str  # short name of the invariant broken
    version: str | None
    detail: str  # what was found, in a sentence a person can act on

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.rule}" + (f" (v{self.version})" if self.version else "") + f": {self.detail}"


def champion_passed_its_gate(versions: dict[str, VersionInfo]) -> list[Violation]:
    champion = next((info for info in versions.values() if CHAMPION in info.aliases), None)
    if champion is None or champion.gate_verdict == PASSED:
        return []
    verdict = champion.gate_verdict or "none recorded"
    return [Violation("champion-gated", champion.version, f"holds champion, but its gate verdict is {verdict!r}")]


def aliases_match_audit_log(versions: dict[str, VersionInfo], events: list[AuditEvent]) -> list[Violation]:
    """`champion` and `previous` are where the last recorded transition left them."""
    holding = {
        alias: next((v for v, info in versions.items() if alias in info.aliases), None)
        for alias in (CHAMPION, PREVIOUS)
    }
    actual = AliasHolders(holding[CHAMPION], holding[PREVIOUS])
    expected = events[-1].after if events else AliasHolders(None, None)
    if actual == expected:
        return []
    last = (
        f"the last audit event ({events[-1].action} v{events[-1].version} at {events[-1].at})"
        if events
        else ("an empty audit log")
    )
    return [
        Violation(
            "aliases-audited",
            actual.champion,
            f"registry has champion={actual.champion} previous={actual.previous}, {last} says "
            f"champion={expected.champion} previous={expected.previous}",
        )
    ]


def retired_hold_no_alias(versions: dict[str, VersionInfo]) -> list[Violation]:
    return [
        Violation("retired-unaliased", info.version, f"is retired but holds {', '.join(info.aliases)}")
        for info in versions.values()
        if info.tags.get(f"{TAG}retired") == "true" and info.aliases
    ]


def check_registry(registry: Registry) -> list[Violation]:
    """Every invariant over the registry and its audit log; an empty list when all hold."""
    versions = {info.version: info for info in registry.versions()}
    found = champion_passed_its_gate(versions)
    found += aliases_match_audit_log(versions, registry.audit_log())
    found += retired_hold_no_alias(versions)
    found += [
        Violation("version-complete", info.version, f"lacks {', '.join(missing)}")
        for info in versions.values()
        if (missing := registry.missing_records(info))
    ]
    interrupted = registry.interrupted_promotion()
    if interrupted is not None:
        found.append(
            Violation(
                "promotion-finished",
                interrupted["version"],
                f"a promotion begun at {interrupted['at']} did not finish; the next promotion, "
                "rollback or retirement finishes it",
            )
        )
    return found
