"""Canary, shadow and A/B rollout: deterministic routing of ids (or an A/B test's units) to arms, the rows each model
answers, per-arm comparison tests, and the verdict on a challenger from its labeled live batches (promote, hold or
drop)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DatasetConfig, DriftlineConfig, Task
from driftline.data import prediction_log
from driftline.data.loading import as_text
from driftline.governance.arm_tests import bootstrap_difference, two_proportion_test
from driftline.modeling.metrics import greater_is_better
from driftline.modeling.pipeline import Predictions, predict
from driftline.monitoring import label_store, performance
from driftline.registry.ab_tests import AbTest

CHAMPION_ARM, CANARY_ARM = "champion", "canary"
SERVED_BY_CHAMPION, SERVED_BY_CHALLENGER = "champion", "challenger"  # the prediction log's `served_by`
# An A/B test's arms: A is the champion at its start (served_by champion), B the test's version (served_by challenger).
ARM_A, ARM_B = "A", "B"


def route(ids: pd.Series, share: float, salt: str) -> np.ndarray:
    """The arm of each id: `canary` when sha256(salt + id), read as a number in [0, 1), falls under `share`.

    The same id always lands in the same arm for the same salt (use the canary's version), in any process.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be within [0, 1], got {share}")
    positions = np.array([_position(salt, i) for i in ids.astype(str)])
    return np.where(positions < share, CANARY_ARM, CHAMPION_ARM)


def _position(salt: str, text: str) -> float:
    """sha256(salt + id) read as a number in [0, 1)."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{text}".encode()).digest()[:8], "big") / 2**64


@dataclass(frozen=True)
class AbSplit:
    """A running A/B test as routing needs it: arm B's version answers `share` of the units of `unit_column`.

    A unit's arm is `route(unit, share, salt=version)`: the same unit meets the same arm in the online service and in
    batch files, in every process and after restarts. A row without a unit is answered by arm A."""

    test_id: str
    version: str  # arm B
    champion_version: str  # arm A
    share: float
    unit_column: str

    @classmethod
    def of(cls, test: AbTest) -> AbSplit:
        return cls(test.id, test.version, test.champion_version, test.share, test.unit_column)

    def arm_of(self, unit: str | None) -> str:
        """The arm of one unit given as text (None: no unit, arm A): what `route` gives it, without a frame."""
        return ARM_B if unit is not None and _position(self.version, unit) < self.share else ARM_A

    def arms(self, units: pd.Series) -> np.ndarray:
        """`A` or `B` per unit (ids or category codes as data files hold them: 3, 3.0 and "3" are one unit)."""
        return np.array([self.arm_of(unit if isinstance(unit, str) else None) for unit in as_text(units)], dtype=object)

    def arms_of(self, frame: pd.DataFrame) -> np.ndarray:
        """The arm of each row of a batch; every row is arm A when the batch has no unit column."""
        if self.unit_column not in frame:
            return np.full(len(frame), ARM_A, dtype=object)
        return self.arms(frame[self.unit_column])


# --- batch scoring under a rollout -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Challenger:
    """The held challenger a batch is also scored with: `shadow` (every row, logged only), `canary` (a share of
    the rows, by id hash, answered by it) or `ab` (arm B of a running A/B test: a share of the units)."""

    model: Pipeline
    version: str
    mode: str
    canary_share: float = 0.0
    ab: AbSplit | None = None  # mode `ab`: the test's split

    @classmethod
    def of(cls, model: Pipeline, version: str, cfg: DriftlineConfig) -> Challenger:
        return cls(model, version, cfg.rollout.mode, cfg.rollout.canary_share)

    @classmethod
    def of_ab_test(cls, model: Pipeline, split: AbSplit) -> Challenger:
        """Arm B of a running A/B test (`model` is its version's)."""
        return cls(model, split.version, "ab", split.share, split)


@dataclass(frozen=True)
class Answered:
    """What is served for each row, who answered it, and (shadow) the challenger's answers logged beside."""

    predictions: Predictions
    model_version: str | np.ndarray
    served_by: str | np.ndarray
    shadow: Predictions | None = None
    shadow_version: str | None = None
    arm: np.ndarray | None = None  # under an A/B test: A or B per row

    def champion_signal(self, task: Task) -> np.ndarray:
        """The champion's output on the rows it answered: what prediction drift compares with its reference."""
        signal = self.predictions.signal(task)
        return signal if isinstance(self.served_by, str) else signal[self.served_by == SERVED_BY_CHAMPION]


def answer(
    champion: Pipeline,
    champion_version: str,
    frame: pd.DataFrame,
    dataset: DatasetConfig,
    challenger: Challenger | None = None,
) -> Answered:
    """The rows' predictions: the champion's, with the challenger in shadow beside them or answering its canary rows
    (or its A/B test's arm B rows)."""
    if challenger is None:
        return Answered(predict(champion, frame, dataset), champion_version, SERVED_BY_CHAMPION)
    if challenger.mode == "shadow":
        return Answered(
            predict(champion, frame, dataset),
            champion_version,
            SERVED_BY_CHAMPION,
            predict(challenger.model, frame, dataset),
            challenger.version,
        )
    arm = None
    if challenger.ab is not None:
        arm = challenger.ab.arms_of(frame)
        canary = arm == ARM_B
    else:
        canary = route(frame[dataset.id_column], challenger.canary_share, salt=challenger.version) == CANARY_ARM
    merged = merge_arms(
        predict(champion, frame[~canary], dataset), predict(challenger.model, frame[canary], dataset), canary
    )
    return Answered(
        merged,
        np.where(canary, challenger.version, champion_version).astype(object),
        np.where(canary, SERVED_BY_CHALLENGER, SERVED_BY_CHAMPION).astype(object),
        arm=arm,
    )


def merge_arms(champion: Predictions, canary: Predictions, to_canary: np.ndarray) -> Predictions:
    """Both arms' predictions back in row order (row i from the canary where `to_canary[i]`)."""
    rows = len(to_canary)
    labels = np.empty(rows, dtype=np.result_type(champion.labels, canary.labels))
    labels[~to_canary], labels[to_canary] = champion.labels, canary.labels
    if champion.proba is None or canary.proba is None:
        return Predictions(labels, None, champion.classes)
    if list(champion.classes) != list(canary.classes):
        raise ValueError(
            f"the challenger's classes {list(canary.classes)} differ from the champion's {list(champion.classes)}: "
            "one output file cannot hold both; set rollout.mode: shadow or retrain on data with the same classes"
        )
    proba = np.empty((rows, champion.proba.shape[1]))
    proba[~to_canary], proba[to_canary] = champion.proba, canary.proba
    return Predictions(labels, proba, champion.classes)


@dataclass
class Tally:
    """Per batch: rows scored, rows the canary (or an A/B test's arm B) answered, and shadow agreement."""

    rows: int = 0
    canary_rows: int = 0
    shadow_rows: int = 0
    agreeing: float = 0.0  # classification: rows with the same label; regression: sum of |difference|
    ab_rows: int = 0  # rows of a running A/B test
    arm_b_rows: int = 0

    def add(self, answered: Answered, task: Task) -> None:
        self.rows += len(answered.predictions.labels)
        if answered.arm is not None:
            self.ab_rows += len(answered.arm)
            self.arm_b_rows += int((answered.arm == ARM_B).sum())
        elif not isinstance(answered.served_by, str):
            self.canary_rows += int((answered.served_by == SERVED_BY_CHALLENGER).sum())
        if answered.shadow is not None:
            served, shadow = answered.predictions.labels, answered.shadow.labels
            self.shadow_rows += len(served)
            if task.is_classification:
                self.agreeing += float((served == shadow).sum())
            else:
                self.agreeing += float(np.abs(served.astype(float) - shadow.astype(float)).sum())

    def merged(self, other: Tally) -> Tally:
        return Tally(
            self.rows + other.rows,
            self.canary_rows + other.canary_rows,
            self.shadow_rows + other.shadow_rows,
            self.agreeing + other.agreeing,
            self.ab_rows + other.ab_rows,
            self.arm_b_rows + other.arm_b_rows,
        )

    def figures(self, task: Task) -> dict[str, float]:
        """What the scoring run logs: the canary's rows, an A/B test's rows per arm, and the shadow's agreement (or
        mean |difference|)."""
        found: dict[str, float] = {}
        if self.canary_rows:
            found["canary_rows"] = float(self.canary_rows)
        if self.ab_rows:
            found["ab_arm_a_rows"] = float(self.ab_rows - self.arm_b_rows)
            found["ab_arm_b_rows"] = float(self.arm_b_rows)
        if self.shadow_rows:
            name = "shadow_agreement" if task.is_classification else "shadow_mean_abs_difference"
            found[name] = self.agreeing / self.shadow_rows
        return found


# --- the verdict from labeled live batches ----------------------------------------------------------------------
@dataclass(frozen=True)
class RolloutVerdict:
    """promote | hold | drop, with the reasons and the figures behind them (for the audit log)."""

    challenger_version: str
    mode: str
    action: str
    reasons: list[str]
    evidence: dict = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return f"{self.mode} rollout of v{self.challenger_version}: {self.action}: " + "; ".join(self.reasons)

    def batch_points(self, steps: dict[str, int]) -> list[tuple[str, float, int]]:
        """Shadow: both models' metric per judged batch, at the batch's step, for MLflow's charts."""
        return [
            (f"shadow_{arm}_{figures['metric']}", figures[arm], steps.get(source, 0))
            for source, figures in self.evidence.get("batches", {}).items()
            for arm in ("champion", "challenger")
        ]


def _shadow_as_served(rows: pd.DataFrame, classes: list | None, task: Task) -> pd.DataFrame:
    """The shadow's answers in the columns `performance.measure` reads (binary: its probability from the signal)."""
    shadow = rows.assign(**{prediction_log.PREDICTION: rows[prediction_log.SHADOW_PREDICTION]})
    proba_columns = [c for c in rows if c.startswith(performance.PROBA_PREFIX)]
    shadow = shadow.drop(columns=proba_columns)
    if task is Task.binary and classes:
        negative, positive = sorted(classes)  # the signal is the probability of the model's second (sorted) class
        signal = rows[prediction_log.SHADOW_SIGNAL].astype(float)
        shadow[f"{performance.PROBA_PREFIX}{negative}"] = 1 - signal
        shadow[f"{performance.PROBA_PREFIX}{positive}"] = signal
    return shadow


def _compared_metric(cfg: DriftlineConfig, champion: dict[str, float], challenger: dict[str, float]) -> str:
    """The primary metric, or accuracy where the shadow's answers cannot give it (multiclass probabilities)."""
    metric = cfg.primary_metric
    return metric if metric in champion and metric in challenger else "accuracy"


def judge_shadow(
    labeled: pd.DataFrame,
    cfg: DriftlineConfig,
    champion_version: str,
    challenger_version: str,
    classes: list | None,
) -> RolloutVerdict:
    """Per labeled batch the champion answered and the challenger shadowed: is the challenger worse (by more than
    rollout.tolerance)? One worse batch drops it; `shadow_batches` batches without regression promote it."""
    settings, task = cfg.rollout, cfg.dataset.task
    if labeled.empty or prediction_log.SHADOW_MODEL_VERSION not in labeled:
        return RolloutVerdict(challenger_version, "shadow", "hold", ["no labeled shadow predictions yet"])
    mine = labeled[
        (labeled[prediction_log.SHADOW_MODEL_VERSION].astype(str) == challenger_version)
        & (labeled[prediction_log.MODEL_VERSION].astype(str) == champion_version)
    ]
    judged, worse, waiting = {}, [], 0
    for source, rows in mine.groupby(prediction_log.SOURCE, sort=False):
        if len(rows) < settings.min_rows:
            waiting += 1
            continue
        served = performance.measure(rows, cfg, classes)
        shadowed = performance.measure(_shadow_as_served(rows, classes, task), cfg, classes)
        metric = _compared_metric(cfg, served, shadowed)
        loss = served[metric] - shadowed[metric]
        loss = loss if greater_is_better(task, metric) else -loss
        judged[str(source)] = {
            "metric": metric,
            "champion": served[metric],
            "challenger": shadowed[metric],
            "rows": len(rows),
        }
        if loss > settings.tolerance:
            worse.append(
                f"batch {source}: {metric} {shadowed[metric]:.4f} vs the champion's "
                f"{served[metric]:.4f} on {len(rows)} labeled rows (worse by {loss:.4f}, allowed "
                f"{settings.tolerance})"
            )
    evidence = {"batches": judged, "waiting_batches": waiting}
    if worse:
        return RolloutVerdict(challenger_version, "shadow", "drop", worse, evidence)
    needed = settings.shadow_batches
    said = f"{len(judged)} of {needed} labeled shadow batches without regression"
    if waiting:
        said += f" ({waiting} more with fewer than rollout.min_rows={settings.min_rows} labeled rows)"
    return RolloutVerdict(
        challenger_version, "shadow", "promote" if len(judged) >= needed else "hold", [said], evidence
    )


def judge_canary(
    labeled: pd.DataFrame,
    cfg: DriftlineConfig,
    champion_version: str,
    challenger_version: str,
    classes: list | None,
) -> RolloutVerdict:
    """Champion rows against canary rows of the batches the canary ran in: a two-proportion z-test of accuracy
    (classification) or a bootstrap of the primary metric (regression); 95% interval against rollout.tolerance."""
    settings, task = cfg.rollout, cfg.dataset.task
    served_by = labeled.get(prediction_log.SERVED_BY, pd.Series(dtype=object)).astype(str)
    version = labeled.get(prediction_log.MODEL_VERSION, pd.Series(dtype=object)).astype(str)
    canary = labeled[(served_by == SERVED_BY_CHALLENGER) & (version == challenger_version)]
    if canary.empty:
        return RolloutVerdict(challenger_version, "canary", "hold", ["no labeled canary predictions yet"])
    in_canary_batches = labeled[prediction_log.SOURCE].isin(set(canary[prediction_log.SOURCE]))
    champion = labeled[in_canary_batches & (version == champion_version) & (served_by == SERVED_BY_CHAMPION)]
    if champion.empty:
        return RolloutVerdict(challenger_version, "canary", "hold", ["no labeled champion rows beside the canary's"])
    if task.is_classification:

        def hits(rows: pd.DataFrame) -> int:
            return int((rows[prediction_log.PREDICTION].astype(str) == rows[label_store.LABEL].astype(str)).sum())

        compared = two_proportion_test(
            hits(champion), len(champion), hits(canary), len(canary), "accuracy", settings.tolerance, settings.min_rows
        )
    else:
        metric = cfg.primary_metric

        def score(truth: np.ndarray, predicted: np.ndarray) -> float:
            frame = pd.DataFrame({label_store.LABEL: truth, prediction_log.PREDICTION: predicted})
            return performance.measure(frame, cfg, classes)[metric]

        def arm(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            return rows[label_store.LABEL].to_numpy(float), rows[prediction_log.PREDICTION].to_numpy(float)

        compared = bootstrap_difference(
            score,
            metric,
            arm(champion),
            arm(canary),
            greater_is_better(task, metric),
            resamples=500,
            tolerance=settings.tolerance,
            min_rows=settings.min_rows,
        )
    action = {"promote": "promote", "roll_back": "drop", "continue": "hold"}[compared.verdict]
    reason = (
        f"{compared.metric} canary {compared.canary:.4f} vs champion {compared.champion:.4f} on "
        f"{compared.rows[1]} / {compared.rows[0]} labeled rows; difference {compared.difference:+.4f}, "
        f"95% interval [{compared.low:+.4f}, {compared.high:+.4f}], tolerance {settings.tolerance}"
    )
    if min(compared.rows) < settings.min_rows:
        reason += f"; fewer than rollout.min_rows={settings.min_rows} labeled rows in an arm"
    evidence = {
        "metric": compared.metric,
        "champion": compared.champion,
        "canary": compared.canary,
        "low": compared.low,
        "high": compared.high,
        "p_value": compared.p_value,
        "rows": list(compared.rows),
    }
    return RolloutVerdict(challenger_version, "canary", action, [reason], evidence)
