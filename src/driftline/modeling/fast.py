"""The online fast path: a fitted pipeline's answers computed from request rows (dicts) with numpy, no DataFrame.

`compile_pipeline(pipeline, dataset)` reads the fitted transformers' own arrays (`SimpleImputer.statistics_`,
`StandardScaler.mean_`/`scale_`, `OneHotEncoder.categories_` at `ColumnTransformer.output_indices_`) and applies
them with the float64 operations scikit-learn does, in its order, so `transform` gives the very matrix the pipeline
hands its estimator. The estimator then predicts on that matrix unchanged, or, for HistGradientBoosting, its trees
compiled by `fast_trees` do. Anything it does not reproduce exactly is refused (`NotReproducible`, with the reason),
and it checks itself against the pipeline on probe rows before it is used; the pipeline then answers instead.

Rows are read as the service reads them into a frame (`request_frame`): a numeric None is missing and infinities are
missing (as `feature_frame` makes them); a categorical None is missing, anything else is its text (3 → "3").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from driftline.config import DatasetConfig
from driftline.modeling.fast_trees import HGB_TYPES, CompiledTrees, NotReproducible, compile_trees, require
from driftline.modeling.pipeline import Predictions, estimator_predictions, feature_frame, predict

Row = Mapping[str, Any]
PROBE_ROWS = 512
__all__ = ["FastPredictor", "NotReproducible", "compile_pipeline", "request_frame"]


def category_text(value: object) -> str | None:
    """A categorical (or id) value as data files hold it: None is missing, anything else is its text."""
    return None if value is None else value if type(value) is str else str(value)


def request_frame(rows: Sequence[Row], dataset: DatasetConfig, also: Sequence[str] = ()) -> pd.DataFrame:
    """Validated request rows as a frame read from a data file would be: id and categories as text, None missing.
    `also`: other fields of the rows, kept as text too (the gate's watched columns, logged, never predicted on)."""
    columns = ([dataset.id_column] if dataset.id_column else []) + dataset.feature_names + list(also)
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    for name in [*dataset.categorical_features, *([dataset.id_column] if dataset.id_column else []), *also]:
        frame[name] = [np.nan if (text := category_text(value)) is None else text for value in frame[name]]
    return frame


@dataclass(frozen=True)
class NumericBlock:
    """`Pipeline([SimpleImputer, StandardScaler])` as arrays: missing → statistic, then `-= mean`, `/= scale`."""

    columns: list[str]
    out: slice
    statistics: np.ndarray
    mean: np.ndarray | None
    scale: np.ndarray | None


@dataclass(frozen=True)
class CategoricalBlock:
    """`Pipeline([SimpleImputer(constant), OneHotEncoder(ignore)])` as one dict per column: text → output column."""

    columns: list[str]
    fill: str  # what a missing value becomes (a category of its own when training saw missing values)
    lookups: list[dict[str, int]]


@dataclass(frozen=True)
class FastPredictor:
    """Answers as `pipeline` does, from request rows; thread-safe (nothing changes after compiling)."""

    pipeline: Pipeline
    dataset: DatasetConfig
    numeric: NumericBlock | None
    categorical: CategoricalBlock | None
    width: int
    trees: CompiledTrees | None  # None: the estimator predicts on the preprocessed rows
    trees_off: str | None = None  # why an HGB model's trees are not compiled

    @property
    def estimator(self) -> Any:
        return self.pipeline[-1]

    @property
    def tier(self) -> str:
        if self.trees is not None:
            return "preprocessing from the fitted arrays, compiled trees"
        return "preprocessing from the fitted arrays, the estimator's own predict" + (
            f" (trees not compiled: {self.trees_off})" if self.trees_off else ""
        )

    def transform(self, rows: Sequence[Row]) -> np.ndarray:
        """The matrix the pipeline's preprocessing gives its estimator (NotReproducible for an unexpected type)."""
        matrix = np.zeros((len(rows), self.width))
        if (numeric := self.numeric) is not None:
            values = [row[name] for row in rows for name in numeric.columns]
            if not all(value is None or type(value) is float or type(value) is int for value in values):
                raise NotReproducible("a numeric value that is not a number")  # pd.to_numeric's rules: the pipeline
            block = np.array(values, dtype=np.float64).reshape(len(rows), len(numeric.columns))  # None → NaN
            block = np.where(np.isfinite(block), block, numeric.statistics)  # missing and ±inf → the statistic
            if numeric.mean is not None:
                block -= numeric.mean
            if numeric.scale is not None:
                block /= numeric.scale
            matrix[:, numeric.out] = block
        if (categorical := self.categorical) is not None:
            for i, row in enumerate(rows):
                for name, lookup in zip(categorical.columns, categorical.lookups, strict=True):
                    text = category_text(row[name])
                    column = lookup.get(categorical.fill if text is None else text)
                    if column is not None:  # an unseen category is all zeros (handle_unknown="ignore")
                        matrix[i, column] = 1.0
        return matrix

    def predict(self, rows: Sequence[Row]) -> Predictions:
        """What `modeling.predict` answers on `request_frame(rows)`."""
        try:
            matrix = self.transform(rows)
        except NotReproducible:  # e.g. text in a numeric field: read by pandas' rules, through the pipeline
            return predict(self.pipeline, request_frame(rows, self.dataset), self.dataset)
        return self._predict_matrix(matrix)

    def _predict_matrix(self, matrix: np.ndarray) -> Predictions:
        task, estimator = self.dataset.task, self.estimator
        if self.trees is None:
            return estimator_predictions(estimator, matrix, task)
        raw = self.trees.raw(matrix)
        if not task.is_classification:
            return Predictions(labels=estimator._loss.link.inverse(raw.ravel()), proba=None, classes=np.array([]))
        return estimator_predictions(estimator, matrix, task, proba=estimator._loss.predict_proba(raw))


# --- compiling: structure checks, then a self-check on probe rows -----------------------------------------------------
def compile_pipeline(pipeline: Pipeline, dataset: DatasetConfig, probe_rows: int = PROBE_ROWS) -> FastPredictor:
    """A `FastPredictor` that answers exactly as `pipeline` does, checked on `probe_rows` generated rows; raises
    `NotReproducible` with the reason when it cannot be built (the pipeline must answer)."""
    require(type(pipeline) is Pipeline and len(pipeline.steps) == 2, "not Pipeline([ColumnTransformer, estimator])")
    preprocess, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    require(type(preprocess) is ColumnTransformer, "the first step is not a ColumnTransformer")
    require(preprocess.transformer_weights is None, "ColumnTransformer with transformer_weights")
    require(sklearn.get_config()["transform_output"] == "default", "scikit-learn's set_output is not 'default'")
    for step in (pipeline, preprocess, estimator):
        require(getattr(step, "_sklearn_output_config", {}).get("transform") in (None, "default"), "set_output")
    numeric, categorical, width = _blocks(preprocess, dataset)
    require(getattr(estimator, "n_features_in_", width) == width, "the estimator expects another number of columns")
    require(not hasattr(estimator, "feature_names_in_"), "the estimator was fitted with feature names")
    trees, trees_off = None, None
    if type(estimator).__name__ in HGB_TYPES:
        try:
            trees = compile_trees(estimator)
        except NotReproducible as why:
            trees_off = str(why)
    fast = FastPredictor(pipeline, dataset, numeric, categorical, width, trees, trees_off)
    if probe_rows:
        rows = probe(fast, probe_rows)
        if trees is not None and (problem := _difference(fast, rows)):
            fast = FastPredictor(pipeline, dataset, numeric, categorical, width, None, problem)
        require((problem := _difference(fast, rows)) is None, f"self-check on probe rows: {problem}")
    return fast


def _blocks(
    preprocess: ColumnTransformer, dataset: DatasetConfig
) -> tuple[NumericBlock | None, CategoricalBlock | None, int]:
    numeric, categorical, width, seen = None, None, 0, []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder":
            require(transformer == "drop", "ColumnTransformer remainder is not 'drop'")
            continue
        require(isinstance(columns, list) and all(isinstance(c, str) for c in columns), f"{name}: columns not by name")
        out = preprocess.output_indices_[name]
        width = max(width, out.stop)
        if not columns:
            require(out.stop == out.start, f"{name}: output from no columns")
            continue
        require(type(transformer) is Pipeline and len(transformer.steps) == 2, f"{name}: not a two-step Pipeline")
        if type(transformer.steps[-1][1]) is StandardScaler:
            require(numeric is None and set(columns) <= set(dataset.numeric_features), f"{name}: unexpected columns")
            numeric = _numeric_block(transformer, columns, out)
        else:
            require(
                categorical is None and set(columns) <= set(dataset.categorical_features), f"{name}: unexpected columns"
            )
            categorical = _categorical_block(transformer, columns, out)
        seen += columns
    require(sorted(seen) == sorted(dataset.feature_names), "the pipeline's columns differ from the config's features")
    return numeric, categorical, width


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _numeric_block(transformer: Pipeline, columns: list[str], out: slice) -> NumericBlock:
    imputer, scaler = transformer.steps[0][1], transformer.steps[1][1]
    require(type(imputer) is SimpleImputer, "numeric: the first step is not a SimpleImputer")
    require(_is_nan(imputer.missing_values) and not imputer.add_indicator, "numeric imputer: missing_values/indicator")
    statistics = imputer.statistics_
    require(statistics.dtype == np.float64 and statistics.shape == (len(columns),), "numeric imputer: statistics")
    require(bool(np.isfinite(statistics).all()), "numeric imputer: a statistic is NaN (a column empty in training)")
    require(list(imputer.feature_names_in_) == columns, "numeric imputer: fitted on other columns")
    require(out.stop - out.start == len(columns), "numeric: output width")
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    for array in (mean, scale):
        require(array is None or (array.dtype == np.float64 and array.shape == (len(columns),)), "scaler: mean/scale")
    return NumericBlock(columns, out, statistics, mean, scale)


def _categorical_block(transformer: Pipeline, columns: list[str], out: slice) -> CategoricalBlock:
    imputer, encoder = transformer.steps[0][1], transformer.steps[1][1]
    require(type(imputer) is SimpleImputer and type(encoder) is OneHotEncoder, "categorical: unexpected steps")
    require(imputer.strategy == "constant" and isinstance(imputer.fill_value, str), "categorical imputer: not constant")
    require(_is_nan(imputer.missing_values) and not imputer.add_indicator, "categorical imputer: missing/indicator")
    require(list(imputer.feature_names_in_) == columns, "categorical imputer: fitted on other columns")
    require(encoder.handle_unknown == "ignore", f"encoder: handle_unknown={encoder.handle_unknown!r}")
    require(
        encoder.drop is None and encoder.min_frequency is None and encoder.max_categories is None,
        "encoder: drop or infrequent categories",
    )
    require(not encoder.sparse_output and np.dtype(encoder.dtype) == np.float64, "encoder: not dense float64")
    require(len(encoder.categories_) == len(columns), "encoder: categories do not match the columns")
    lookups, column = [], out.start
    for categories in encoder.categories_:
        require(
            all(type(c) is str for c in categories) and len(set(categories)) == len(categories),
            "encoder: categories that are not distinct text",
        )
        lookups.append({category: column + j for j, category in enumerate(categories)})
        column += len(categories)
    require(column == out.stop, "categorical: output width")
    return CategoricalBlock(columns, imputer.fill_value, lookups)


def probe(fast: FastPredictor, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rows around the fitted statistics: whole and fractional numbers, missing, ±inf, ±1e12; known, missing, unseen
    and fill-value categories, and whole numbers as categories."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    if (numeric := fast.numeric) is not None:
        for j, name in enumerate(numeric.columns):
            centre = numeric.mean[j] if numeric.mean is not None else numeric.statistics[j]
            spread = numeric.scale[j] if numeric.scale is not None else max(abs(numeric.statistics[j]), 1.0)
            values = centre + spread * rng.normal(0, 2, count)
            whole = rng.random(count) < 0.5
            values[whole] = np.round(values[whole])  # whole numbers, as most real inputs are
            special = rng.random(count)
            specials = [np.inf, -np.inf, 1e12, -1e12, float(numeric.statistics[j])]
            for i, row in enumerate(rows):
                row[name] = (
                    None if special[i] < 0.08 else float(rng.choice(specials)) if special[i] < 0.1 else float(values[i])
                )
    if (categorical := fast.categorical) is not None:
        for name, lookup in zip(categorical.columns, categorical.lookups, strict=True):
            known = list(lookup)
            for row in rows:
                u = rng.random()
                row[name] = (
                    None
                    if u < 0.08
                    else "__unseen__"
                    if u < 0.12
                    else 3
                    if u < 0.14
                    else categorical.fill
                    if u < 0.16
                    else known[rng.integers(len(known))]
                )
    return rows


def _difference(fast: FastPredictor, rows: list[dict[str, Any]]) -> str | None:
    """None when the fast path answers `rows` bit for bit as the pipeline does; else what differs."""
    frame = request_frame(rows, fast.dataset)
    matrix = fast.pipeline[:-1].transform(feature_frame(frame, fast.dataset))
    if not np.array_equal(fast.transform(rows), matrix):
        return "the preprocessed rows differ"
    if fast.trees is not None and not np.array_equal(fast.trees.raw(matrix), fast.estimator._raw_predict(matrix)):
        return "the compiled trees' sums differ from _raw_predict"
    outcomes: list[Predictions | type] = []
    for answer in (lambda: fast.predict(rows), lambda: predict(fast.pipeline, frame, fast.dataset)):
        try:
            outcomes.append(answer())
        except Exception as error:  # e.g. a forest's float32 overflow on 1e12: both must fail alike
            outcomes.append(type(error))
    ours, theirs = outcomes
    if not isinstance(ours, Predictions) or not isinstance(theirs, Predictions):
        return None if ours == theirs else f"errors differ: {ours} vs {theirs}"
    if not np.array_equal(ours.labels, theirs.labels):
        return "labels differ"
    if ours.proba is not None and not np.array_equal(ours.proba, theirs.proba):
        return f"probabilities differ by up to {np.abs(ours.proba - theirs.proba).max():.3g}"
    return None
