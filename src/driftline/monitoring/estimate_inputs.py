"""What the performance estimators read from a batch's features: numeric matrices from the holdout's columns and
categories, and a loss model's trees saved as plain arrays (no pickle, no code)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from driftline.errors import DriftlineError
from driftline.modeling.fast_trees import BitTables, CompiledTrees, WalkTables, compile_trees

# A category column keeps its most frequent values on the holdout; the rest count as missing.
MAX_CATEGORIES = 30


@dataclass(frozen=True)
class FeatureCodes:
    """The holdout's feature columns: numeric ones as they are, categorical ones as codes of their known values."""

    numeric: list[str]
    categories: dict[str, list[str]]

    @classmethod
    def of(cls, features: pd.DataFrame) -> FeatureCodes:
        numeric = [name for name in features.columns if pd.api.types.is_numeric_dtype(features[name])]
        categories = {
            name: [str(value) for value in features[name].dropna().astype(str).value_counts().index[:MAX_CATEGORIES]]
            for name in features.columns
            if name not in numeric
        }
        return cls(numeric=numeric, categories=categories)

    def _checked(self, features: pd.DataFrame) -> pd.DataFrame:
        missing = sorted((set(self.numeric) | set(self.categories)) - set(features.columns))
        if missing:
            raise DriftlineError(f"the batch lacks the columns the estimator was fitted on: {missing}")
        return features

    def ordinal(self, features: pd.DataFrame) -> np.ndarray:
        """Numeric columns, then each categorical column as the index of its value (unknown: NaN); for trees."""
        features = self._checked(features)
        columns = [pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float) for name in self.numeric]
        for name, known in self.categories.items():
            codes = pd.Categorical(features[name].astype("string"), categories=known).codes.astype(float)
            columns.append(np.where(codes < 0, np.nan, codes))
        return np.column_stack(columns) if columns else np.empty((len(features), 0))

    def indicators(self, features: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """Numeric columns, then one 0/1 column per known category value; for comparing means."""
        features = self._checked(features)
        columns = [pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float) for name in self.numeric]
        names = list(self.numeric)
        for name, known in self.categories.items():
            values = features[name].astype("string")
            for value in known:
                columns.append((values == value).fillna(False).to_numpy(dtype=float))
                names.append(f"{name}={value}")
        return (np.column_stack(columns) if columns else np.empty((len(features), 0))), names

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "categories": self.categories}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureCodes:
        return cls(numeric=list(data["numeric"]), categories={k: list(v) for k, v in data["categories"].items()})


def fit_loss_model(inputs: np.ndarray, loss: np.ndarray, seed: int = 0) -> CompiledTrees:
    """A HistGradientBoostingRegressor of one row's loss, kept as its trees (checked to answer as the model does)."""
    model = HistGradientBoostingRegressor(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=20, early_stopping=False, random_state=seed
    ).fit(inputs, loss)
    trees = compile_trees(model)
    if not np.allclose(trees.raw(inputs)[:, 0], model.predict(inputs)):
        raise DriftlineError("the loss model's trees do not reproduce its predictions")
    return trees


def predict_loss(trees: CompiledTrees, inputs: np.ndarray) -> np.ndarray:
    """Each row's predicted loss, never below zero (as NannyML's DLE clips it)."""
    return np.maximum(trees.raw(inputs)[:, 0], 0.0)


def save_trees(trees: CompiledTrees, path: Path) -> None:
    arrays = {field.name: np.asarray(getattr(trees.tables, field.name)) for field in fields(trees.tables)}
    np.savez(
        path,
        kind=np.asarray("bit" if isinstance(trees.tables, BitTables) else "walk"),
        n_iter=np.asarray(trees.n_iter),
        per_iteration=np.asarray(trees.per_iteration),
        baseline=trees.baseline,
        **arrays,
    )


def load_trees(path: Path) -> CompiledTrees:
    with np.load(path, allow_pickle=False) as stored:
        kind = BitTables if str(stored["kind"]) == "bit" else WalkTables
        values = {field.name: stored[field.name] for field in fields(kind)}
        if kind is WalkTables:
            values["depth"] = int(values["depth"])
        return CompiledTrees(
            tables=kind(**values),
            n_iter=int(stored["n_iter"]),
            per_iteration=int(stored["per_iteration"]),
            baseline=stored["baseline"],
        )
