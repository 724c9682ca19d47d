"""Demo batches that breach the gate's slices or fairness in production: one region treated apart."""

import pandas as pd


def unfair_to(frame: pd.DataFrame, region: str = "south") -> pd.DataFrame:
    """The region's customers all on long two-year contracts paid by card, without support calls: the model flags
    hardly any of them while it flags the others as before, a real gap in positive-prediction rates."""
    skewed = frame.copy()
    rows = skewed["region"] == region
    skewed.loc[rows, ["contract", "payment_method"]] = ["two-year", "card"]
    skewed.loc[rows, ["tenure_months", "support_calls"]] = [60.0, 0.0]
    return skewed


def labels_flipped_in(frame: pd.DataFrame, region: str = "south", target: str = "churned") -> pd.DataFrame:
    """The region's outcomes turn opposite to what its features predicted: the model's metric on that slice falls."""
    flipped = frame.copy()
    rows = flipped["region"] == region
    flipped.loc[rows, target] = 1 - flipped.loc[rows, target]
    return flipped
