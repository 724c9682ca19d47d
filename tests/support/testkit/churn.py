"""Demo batches whose label distribution moved: the same kind of customers, a different share of them churned."""

from __future__ import annotations

import pandas as pd


def churn_resampled(frame: pd.DataFrame, rows: int, share: float, seed: int) -> pd.DataFrame:
    """`rows` of the frame's rows, drawn without replacement (each id once) so that `share` of them churned."""
    churned, stayed = frame[frame["churned"] == 1], frame[frame["churned"] == 0]
    positives = round(rows * share)
    drawn = pd.concat(
        [churned.sample(positives, random_state=seed), stayed.sample(rows - positives, random_state=seed)]
    )
    return drawn.sort_values("event_time").reset_index(drop=True)
