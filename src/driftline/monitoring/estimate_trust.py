"""Whether a version's performance estimator is trusted: its holdout check at training, then its labeled batches."""

from __future__ import annotations

from dataclasses import dataclass

from driftline.config.estimation import EstimationConfig


@dataclass(frozen=True)
class TrustState:
    trusted: bool
    reason: str


def trust_state(holdout_within: bool, labeled: list[bool], settings: EstimationConfig) -> TrustState:
    """Replay the estimator's record: trusted from training when its holdout chunks lay within their bands; untrusted
    once `untrusted_after` of the last `trust_window` labeled batches (`labeled`, oldest first: realized metric
    inside the band) fall outside; trusted again after `trusted_again_after` in a row inside. Only the batches since
    the last change count, so the batches that made it untrusted cannot undo a return to trust."""
    trusted = holdout_within
    reason = (
        "its error on the holdout chunks lay within its band at training"
        if holdout_within
        else "its error on the holdout chunks fell outside its band at training"
    )
    since: list[bool] = []  # labeled batches since the last change of state
    for inside in labeled:
        since.append(inside)
        if trusted:
            recent = since[-settings.trust_window :]
            outside = recent.count(False)
            if outside >= settings.untrusted_after:
                trusted, since = False, []
                reason = f"{outside} of its last {len(recent)} labeled batches fell outside the band"
        else:
            streak = _inside_streak(since)
            if streak >= settings.trusted_again_after:
                trusted, since = True, []
                reason = f"{streak} labeled batches in a row fell inside the band"
    if not labeled:
        reason += "; no labeled batch yet"
    elif not trusted:
        reason += f"; {settings.trusted_again_after} labeled batches in a row inside the band make it trusted again"
    return TrustState(trusted=trusted, reason=reason)


def _inside_streak(record: list[bool]) -> int:
    streak = 0
    for inside in reversed(record):
        if not inside:
            break
        streak += 1
    return streak
