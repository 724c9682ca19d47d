"""Which model answers each row of a request: the champion, a canary's challenger (by the id's hash, or at random), or
a running A/B test's arm (by the hash of the row's unit, as batch scoring routes the same units)."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig
from driftline.governance import rollout
from driftline.modeling.fast import Row, category_text
from driftline.registry import CHALLENGER, CHAMPION
from driftline.serving.follower import ServedModel, Serving

AB_ARMS = {CHAMPION: rollout.ARM_A, CHALLENGER: rollout.ARM_B}  # served_by → an A/B test's arm


def route_rows(
    rows: Sequence[Row], serving: Serving, cfg: DriftlineConfig, rng: np.random.Generator
) -> list[tuple[str, ServedModel, Sequence[int]]]:
    """The arms that answer a request: (served_by, model, row positions), champion first; an arm with no rows is
    left out. While an A/B test runs, its split decides by each row's unit (`champion` is arm A, `challenger` B)."""
    if serving.ab is not None and serving.challenger is not None:
        split = serving.ab
        arms = [split.arm_of(category_text(row.get(split.unit_column))) for row in rows]
        return _arms(serving, np.array(arms) == rollout.ARM_B)
    if serving.challenger is None or cfg.serving.canary_share == 0:
        return [(CHAMPION, serving.champion, range(len(rows)))]
    id_column = cfg.dataset.id_column
    ids = (
        pd.Series([category_text(row[id_column]) for row in rows], dtype=object)
        if (cfg.serving.canary_routing == "id")
        else None
    )
    return _arms(serving, canary_rows(ids, len(rows), cfg.serving.canary_share, serving.challenger, rng))


def _arms(serving: Serving, to_challenger: np.ndarray) -> list[tuple[str, ServedModel, Sequence[int]]]:
    arms = ((CHAMPION, serving.champion, ~to_challenger), (CHALLENGER, serving.challenger, to_challenger))
    return [(name, served, np.flatnonzero(mask)) for name, served, mask in arms if mask.any()]


def canary_rows(
    ids: pd.Series | None, rows: int, share: float, challenger: ServedModel, rng: np.random.Generator
) -> np.ndarray:
    """Which rows the challenger answers: by the id's hash salted with its version (stable per id in every process,
    as `rollout.route` routes batch canaries), or at random when there are no ids to route by."""
    if ids is None:
        return rng.random(rows) < share
    return rollout.route(ids, share, salt=challenger.ref.version) == rollout.CANARY_ARM
