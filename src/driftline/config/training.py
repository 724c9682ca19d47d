"""Sections about training and the gate: the estimator and holdout, thresholds, slices, fairness, approval."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from typing import Any, Literal

from pydantic import Field, model_validator

from driftline.config.base import METRICS, Section

_METRICS_BY_TASK = "; ".join(f"{task} {', '.join(metrics)}" for task, metrics in METRICS.items())


class HoldoutConfig(Section):
    strategy: Literal["auto", "time", "random"] = Field(
        "auto",
        description="auto: time (the most recent rows) when dataset.event_time_column is set, else random "
        "(stratified for classification).",
    )
    fraction: float = Field(0.2, gt=0, lt=0.9, description="Share held out for evaluation (0 < f < 0.9).")


class ModelConfig(Section):
    estimator: str = Field(
        "sklearn.ensemble.HistGradientBoostingClassifier",
        description="Import path of a scikit-learn estimator class; must be a classifier or regressor as the task "
        "needs. Not set: HistGradientBoostingClassifier, or sklearn.ensemble.HistGradientBoostingRegressor for "
        "regression.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Estimator keyword arguments, checked when the config loads by the estimator itself "
        "(scikit-learn's parameter validation): an unknown name or a value it refuses is exit 2 naming "
        "`model.params.<name>`, not a failure in the middle of a retrain.",
    )
    seed: int = Field(
        42, description="random_state (unless set in params), the random holdout split, reference sampling."
    )
    holdout: HoldoutConfig = Field(HoldoutConfig(), description="The rows held out to evaluate and gate a model.")
    allowed_modules: list[str] = Field(
        default_factory=lambda: ["sklearn"], description="Top-level packages an estimator may be imported from."
    )
    trusted_types: list[str] = Field(
        default_factory=list, description="Extra types skops may load, after your own review of them."
    )

    def estimator_class(self) -> type:
        module_name, _, class_name = self.estimator.rpartition(".")
        return getattr(importlib.import_module(module_name), class_name)

    def params_problems(self) -> list[str]:
        """Each entry of `params` the estimator refuses, by its own checks: the constructor for an unknown name,
        scikit-learn's parameter validation for a value (what `fit` would refuse in the middle of a retrain)."""
        estimator_class = self.estimator_class()
        problems = []
        for name, value in self.params.items():
            field = f"model.params.{name}"
            try:
                estimator = estimator_class(**{name: value})
            except TypeError as exc:
                if "unexpected keyword argument" in str(exc):
                    close = difflib.get_close_matches(name, inspect.signature(estimator_class).parameters, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(
                        f"{field}: not a parameter of {estimator_class.__name__}; remove it or check its spelling{hint}"
                    )
                continue  # else the class needs other constructor arguments: fit will tell
            try:
                getattr(estimator, "_validate_params", lambda: None)()
            except ValueError as exc:  # scikit-learn's InvalidParameterError
                problems.append(
                    f"{field}: {_rule_broken(str(exc), estimator_class.__name__, value)}; correct it under model.params"
                )
        return problems

    @model_validator(mode="after")
    def _estimator_imports(self) -> ModelConfig:
        module_name, _, class_name = self.estimator.rpartition(".")
        if not module_name or module_name.split(".")[0] not in self.allowed_modules:
            raise ValueError(
                f"estimator {self.estimator!r} is not under an allowed module {self.allowed_modules}; "
                "use a full import path such as sklearn.linear_model.LogisticRegression, or add its top-level "
                "package to model.allowed_modules after reviewing it"
            )
        try:
            estimator_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"estimator {self.estimator!r} does not import: {exc}; check the module and class name, "
                "e.g. sklearn.ensemble.RandomForestClassifier"
            ) from None
        if not callable(getattr(estimator_class, "fit", None)):
            raise ValueError(f"estimator {self.estimator!r} has no fit method; it is not a scikit-learn estimator")
        return self


def _rule_broken(message: str, estimator: str, value: Any) -> str:
    """scikit-learn's "The 'p' parameter of E must be R. Got V instead." as "must be R for E, got V"."""
    found = re.search(r"must be (?P<rule>.*)\. Got .* instead\.$", message, re.DOTALL)
    return f"must be {found['rule']} for {estimator}, got {value!r}" if found else message


class SlicesConfig(Section):
    columns: list[str] = Field(
        default_factory=list,
        description="Columns (features or not; naming one declares it) whose values slice the holdout: the primary "
        "metric per value. Empty: no slices.",
    )
    min_rows: int = Field(100, ge=1, description="Smaller slices are reported but never decide.")
    tolerance: float = Field(
        0.02,
        ge=0,
        description="How much worse than the champion's the challenger's primary metric may be on a slice with enough "
        "rows. In production (labels), how far a slice with enough labeled rows may fall below the champion's own "
        "value at promotion.",
    )


class FairnessConfig(Section):
    attribute: str | None = Field(
        None,
        description="Sensitive column (binary task; naming it declares it, the model need not use it): the "
        "positive-prediction rate per group, at the gate and on every labeled batch of the champion. none: no check.",
    )
    min_disparate_impact: float = Field(
        0.8, gt=0, le=1, description="Lowest allowed ratio of the smallest to the largest group positive rate."
    )
    min_rows: int = Field(100, ge=1, description="Groups with fewer holdout rows are left out of the ratio.")


class GateConfig(Section):
    metric: str | None = Field(
        None,
        description="Primary metric, the one compared against the champion. none: roc_auc, f1_macro or rmse by task. "
        f"Metrics by task: {_METRICS_BY_TASK}.",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Worst acceptable value per metric: a floor for scores, a ceiling for errors; applies to every "
        "model, including the first.",
    )
    min_improvement: float = Field(
        0.001,
        gt=0,
        description="How much the challenger must beat the champion on the primary metric (absolute, > 0: "
        "a challenger that only ties the champion is not promoted).",
    )
    slices: SlicesConfig = Field(
        SlicesConfig(),
        description="The primary metric per value of some columns: a slice may not be worse than the champion's.",
    )
    fairness: FairnessConfig = Field(
        FairnessConfig(), description="Binary tasks: the ratio of the groups' positive-prediction rates."
    )
    mode: Literal["auto", "manual"] = Field(
        "auto",
        description="manual: after the automatic checks pass, the training run pauses for a person's approval in the "
        "Prefect UI.",
    )
    approval_timeout_seconds: int = Field(
        86_400, ge=1, description="A manual approval not given within this time rejects the challenger."
    )

    @property
    def watched_columns(self) -> list[str]:
        """The columns slices and fairness read: the prediction log keeps them, so live rows are sliced alike."""
        return list(dict.fromkeys([*self.slices.columns, *filter(None, [self.fairness.attribute])]))
