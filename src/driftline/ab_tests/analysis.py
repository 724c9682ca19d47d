"""The analysis of a running A/B test: each unit's arm from the prediction log, its outcomes joined, the verdict of
the sequential test per day of the test, and what the registry should do with it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.ab_tests.outcomes import UNIT, per_unit, read_outcomes
from driftline.ab_tests.verdict import Verdict, analyse
from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.governance.rollout import SERVED_BY_CHALLENGER, SERVED_BY_CHAMPION
from driftline.registry.ab_tests import AbTest

ARM_A, ARM_B = "A", "B"
MIN_UNITS = 2  # per arm with an outcome, before the statistics are asked (they decide from 30)
B_WINS, A_WINS = "B wins", "A wins"


@dataclass(frozen=True)
class Arms:
    """Each unit the test served, with its arm and the day it was first served; units served by both arms (which
    sticky routing never does: an arm changed by hand) are left out and counted."""

    units: pd.DataFrame  # index: the unit as text; columns: arm, first_day (YYYY-MM-DD)
    in_both: int

    def count(self, arm: str) -> int:
        return int((self.units["arm"] == arm).sum())


def served_arms(log_dir: Path, test: AbTest) -> Arms:
    """The test's units from the prediction log: rows scored since it began (until it ended), answered by arm A's
    version as champion or arm B's as challenger."""
    start = pd.Timestamp(test.started_at)
    end = pd.Timestamp(test.ended_at) if test.ended_at else None
    first_folder = f"date={start:%Y-%m-%d}"
    wanted = [test.unit_column, prediction_log.SERVED_BY, prediction_log.MODEL_VERSION, prediction_log.SCORED_AT]
    frames = []
    for path in prediction_log.log_files(log_dir):
        if path.parent.name < first_folder:
            continue
        rows = pd.read_parquet(path)
        if not set(wanted) <= set(rows.columns):
            continue  # logged without a unit or an arm: not served by the test
        frames.append(rows[wanted])
    empty = pd.DataFrame({"arm": pd.Series(dtype=object), "first_day": pd.Series(dtype=object)})
    if not frames:
        return Arms(empty.rename_axis(UNIT), 0)
    log = pd.concat(frames, ignore_index=True)
    scored = pd.to_datetime(log[prediction_log.SCORED_AT], utc=True)
    in_test = (scored >= start) & ((scored <= end) if end is not None else True)
    served_by, version = log[prediction_log.SERVED_BY].astype(str), log[prediction_log.MODEL_VERSION].astype(str)
    arm = pd.Series(None, index=log.index, dtype=object)
    arm[(served_by == SERVED_BY_CHAMPION) & (version == test.champion_version)] = ARM_A
    arm[(served_by == SERVED_BY_CHALLENGER) & (version == test.version)] = ARM_B
    taken = in_test & arm.notna() & log[test.unit_column].notna()
    seen = pd.DataFrame({UNIT: log.loc[taken, test.unit_column].astype(str), "arm": arm[taken], "at": scored[taken]})
    arms_per_unit = seen.groupby(UNIT)["arm"].nunique()
    both = arms_per_unit[arms_per_unit > 1].index
    seen = seen[~seen[UNIT].isin(both)]
    units = seen.groupby(UNIT).agg(arm=("arm", "first"), first_at=("at", "min"))
    units["first_day"] = units.pop("first_at").dt.strftime("%Y-%m-%d")
    return Arms(units, len(both))


@dataclass(frozen=True)
class ArmFigures:
    arm: str
    units: int
    mean: float | None
    low: float | None  # None: unbounded yet (too little data)
    high: float | None


@dataclass(frozen=True)
class DayRow:
    """The test as it stood at the end of one day: units so far per arm, and the verdict on them."""

    day: str
    units_a: int
    units_b: int
    mean_a: float | None
    mean_b: float | None
    difference: float | None
    low: float | None
    high: float | None
    decision: str


@dataclass(frozen=True)
class AbReport:
    """The verdict on a test now (None: too few units with an outcome), its days, and what was left out."""

    test: AbTest
    metric: str
    decision: str  # running | B wins | A wins | no difference
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    mde: float | None
    srm_p_value: float | None
    halted: str | None  # SRM | guardrail | max duration: why the test stops whatever the metric says
    reasons: list[str]
    arms: list[ArmFigures]
    days: list[DayRow]
    skipped: dict[str, int] = field(default_factory=dict)
    lower_is_better: bool = False

    def to_dict(self) -> dict:
        return {**asdict(self), "test": self.test.to_dict()}

    def evidence(self) -> dict:
        """The figures the registry keeps with the test's end (small enough for one tag)."""
        kept = ("metric", "decision", "difference", "low", "high", "p_value", "mde", "srm_p_value", "halted")
        found = self.to_dict()
        return {**{key: found[key] for key in kept}, "reasons": self.reasons, "arms": found["arms"]}

    def next_step(self, auto_promote: bool) -> str:
        """What the registry does with the verdict: `halt` (SRM, guardrail, maximum duration), `promote` (B wins) or
        `keep` (A wins) with ab.auto_promote, else `none` (the test runs on, or a person decides)."""
        if self.halted:
            return "halt"
        if auto_promote and self.decision in (B_WINS, A_WINS):
            return "promote" if self.decision == B_WINS else "keep"
        return "none"

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons) or self.decision


def analyse_test(
    cfg: DriftlineConfig, test: AbTest, log_dir: Path, store_dir: Path, at: datetime | None = None
) -> AbReport:
    """The test's verdict from the prediction log and the outcome store: per unit, the metric summed (or averaged)
    over its outcome rows; with a `sum`, a unit served without an outcome counts 0 (no purchase is revenue 0).
    The verdict is taken at the end of each day of the test in turn, each look carrying the last (the p-value only
    falls, the interval only narrows), and now."""
    at = at or datetime.now(UTC)
    settings, metric = cfg.ab, test.primary_metric
    arms = served_arms(log_dir, test)
    outcomes = read_outcomes(store_dir, since=test.started_at)
    pre_column = settings.pre_period_column
    columns = [*test.metrics, *test.guardrails, *([pre_column] if pre_column else [])]
    joined = per_unit(outcomes, columns, {**settings.aggregation, **({pre_column: "mean"} if pre_column else {})})
    skipped = dict(joined.skipped)
    never_served = joined.values.index.difference(arms.units.index)
    if len(never_served):
        skipped["units with outcomes never served by the test"] = len(never_served)
    if arms.in_both:
        skipped["units served by both arms (left out)"] = arms.in_both
    values = arms.units.join(joined.values, how="left")
    for column in [*test.metrics, *test.guardrails]:
        measured = column in values and values[column].notna().any()  # a metric no file has stays missing
        if measured and settings.aggregation.get(column, "sum") == "sum":
            values[column] = values[column].fillna(0.0)
    days, previous = [], None
    for day in sorted(set(values["first_day"])):
        so_far = values[values["first_day"] <= day]
        end_of_day = min(at, datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1))
        found = _verdict(cfg, test, so_far, end_of_day, previous)
        previous = found if isinstance(found, Verdict) else previous
        days.append(_day_row(day, so_far, found))
    final = _verdict(cfg, test, values, at, previous)
    return _report(test, metric, final, days, skipped, metric in settings.lower_is_better)


def _arm_values(values: pd.DataFrame, arm: str, column: str) -> np.ndarray:
    mine = values.loc[values["arm"] == arm, column] if column in values else pd.Series(dtype=float)
    return mine.dropna().to_numpy(dtype=float)


def _verdict(
    cfg: DriftlineConfig, test: AbTest, values: pd.DataFrame, at: datetime, previous: Verdict | None
) -> Verdict | str:
    """The statistics' verdict on these units, or why there is none yet (too few units with an outcome)."""
    settings, metric = cfg.ab, test.primary_metric
    outcome_a, outcome_b = _arm_values(values, ARM_A, metric), _arm_values(values, ARM_B, metric)
    if min(outcome_a.size, outcome_b.size) < MIN_UNITS:
        return f"waiting for outcomes: {outcome_a.size} units of A and {outcome_b.size} of B have {metric!r}"
    pre_a = pre_b = None
    pre_column = settings.pre_period_column
    if pre_column and pre_column in values:
        with_outcome = values[values[metric].notna()]
        pre = with_outcome[pre_column].fillna(with_outcome[pre_column].mean()).fillna(0.0)
        pre_a = pre[with_outcome["arm"] == ARM_A].to_numpy(dtype=float)
        pre_b = pre[with_outcome["arm"] == ARM_B].to_numpy(dtype=float)
    guardrails = {
        name: (_arm_values(values, ARM_A, name), _arm_values(values, ARM_B, name), name in settings.lower_is_better)
        for name in test.guardrails
    }
    return analyse(
        outcome_a,
        outcome_b,
        share=test.share,
        alpha=settings.alpha,
        days_run=test.days_run(at),
        mixing_variance=settings.mixing_variance,
        pre_a=pre_a,
        pre_b=pre_b,
        guardrails=guardrails,
        max_days=test.max_days,
        effect_of_interest=settings.effect_of_interest,
        lower_is_better=metric in settings.lower_is_better,
        assigned=((values["arm"] == ARM_A).sum(), (values["arm"] == ARM_B).sum()),
        previous=previous,
    )


def _shown(value: float | None) -> float | None:
    """A figure as JSON and tables take it: an unbounded interval (too little data) is None."""
    return None if value is None or not math.isfinite(value) else float(value)


def _day_row(day: str, so_far: pd.DataFrame, found: Verdict | str) -> DayRow:
    units_a, units_b = int((so_far["arm"] == ARM_A).sum()), int((so_far["arm"] == ARM_B).sum())
    if isinstance(found, str):
        return DayRow(day, units_a, units_b, None, None, None, None, None, "running")
    means = {arm.arm: _shown(arm.mean) for arm in found.arms}
    return DayRow(
        day,
        units_a,
        units_b,
        means.get(ARM_A),
        means.get(ARM_B),
        _shown(found.difference),
        _shown(found.low),
        _shown(found.high),
        found.decision,
    )


def _report(
    test: AbTest,
    metric: str,
    found: Verdict | str,
    days: list[DayRow],
    skipped: dict[str, int],
    lower_is_better: bool,
) -> AbReport:
    if isinstance(found, str):
        return AbReport(
            test,
            metric,
            "running",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            [found],
            [],
            days,
            skipped,
            lower_is_better,
        )
    arms = [ArmFigures(a.arm, a.units, _shown(a.mean), _shown(a.low), _shown(a.high)) for a in found.arms]
    return AbReport(
        test=test,
        metric=metric,
        decision=found.decision,
        difference=_shown(found.difference),
        low=_shown(found.low),
        high=_shown(found.high),
        p_value=_shown(found.p_value),
        mde=_shown(found.mde),
        srm_p_value=_shown(found.srm_p_value),
        halted=found.halted,
        reasons=list(found.reasons),
        arms=arms,
        days=days,
        skipped=skipped,
        lower_is_better=lower_is_better,
    )


def units_per_day(log_dir: Path, unit_column: str, days: int = 28) -> float:
    """Distinct units served per day over the last `days` days of the prediction log that saw any (0: none)."""
    folders = sorted({path.parent.name for path in prediction_log.log_files(log_dir)})[-days:]
    counts = []
    for folder in folders:
        units: set[str] = set()
        for path in sorted((log_dir / folder).glob("*.parquet")):
            rows = pd.read_parquet(path)
            if unit_column in rows:
                units.update(rows[unit_column].dropna().astype(str))
        counts.append(len(units))
    return float(np.mean(counts)) if counts else 0.0
