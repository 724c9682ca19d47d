"""Behavioural tests of trained models (as Made-With-ML's tests/model): invariance, directional expectations,
minimum functionality. Each module trains its model once, on seeded demo data, with the tests' faster settings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from testkit.configs import TASK_KINDS, of_kind, write_config
from testkit.paths import WEEK
from threadpoolctl import threadpool_limits

from driftline.config import DriftlineConfig, load_config
from driftline.data.demo import START, make_frame
from driftline.modeling.pipeline import Predictions, predict
from driftline.training.train import TrainedModel, train_model

TRAINING_ROWS = 4000  # eight weeks of customers, as the demo's reference: enough that noise is not learned as rules


@dataclass(frozen=True)
class DemoModel:
    """A model trained by driftline on the demo's data of one kind of task, and a later week it never saw."""

    kind: str
    cfg: DriftlineConfig
    data: pd.DataFrame  # what it was given: the training rows and the holdout
    trained: TrainedModel
    later: pd.DataFrame

    def answers(self, frame: pd.DataFrame) -> Predictions:
        return predict(self.trained.model, frame, self.cfg.dataset)


def train_demo_model(kind: str, folder: Path) -> DemoModel:
    cfg = load_config(write_config(folder, **TASK_KINDS[kind]))
    frame = of_kind(make_frame(TRAINING_ROWS, seed=1, days=56), kind)
    later = of_kind(make_frame(1000, seed=2, start=START + 9 * WEEK, id_offset=TRAINING_ROWS), kind)
    return DemoModel(kind, cfg, frame, train_model(frame, cfg, source="demo reference"), later)


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """These models are small: on a busy machine OpenMP's team of threads costs fifty times the work it shares."""
    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def churn_model(tmp_path_factory) -> DemoModel:
    """The demo's own model: churn, binary."""
    return train_demo_model("binary", tmp_path_factory.mktemp("churn-model"))


@pytest.fixture(scope="module", params=["multiclass", "regression"])
def other_kind_model(request, tmp_path_factory) -> DemoModel:
    """The demo data's other kinds of task: the contract (multiclass) and the monthly charges (regression)."""
    return train_demo_model(request.param, tmp_path_factory.mktemp(f"{request.param}-model"))
