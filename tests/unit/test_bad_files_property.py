"""Random frames and byte mutations against the loader and validator: a clear rejection or a report, never a crash."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from testkit.paths import DEMO_CONFIG

from driftline.config import load_config
from driftline.data.loading import load_batch
from driftline.errors import DataRejected
from driftline.validation.expectations import build_expectations, validate_frame
from driftline.validation.profile import ReferenceProfile

CFG = load_config(DEMO_CONFIG)
COLUMNS = [*CFG.dataset.feature_names, CFG.dataset.target, "customer_id", "event_time", "unexpected_extra"]
PROFILE = ReferenceProfile(
    numeric_ranges={c: (0.0, 100.0) for c in CFG.dataset.numeric_features},
    categories={c: ["a", "b"] for c in CFG.dataset.categorical_features},
)

cell = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.sampled_from(["a", "b", "2026-01-05T10:00:00Z", "not a date", "1e400", "NaN", ""]),
)


@st.composite
def frames(draw) -> pd.DataFrame:
    columns = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=len(COLUMNS), unique=True))
    rows = draw(st.integers(0, 12))
    return pd.DataFrame({c: draw(st.lists(cell, min_size=rows, max_size=rows)) for c in columns}, dtype=object)


def mutate(raw: bytes, how: str, at: int) -> bytes:
    if how == "truncate":
        return raw[: at % (len(raw) + 1)]
    if how == "garbage":
        position = at % (len(raw) + 1)
        return raw[:position] + b'\xff\x00\xfe;|\t"' + raw[position:]
    return raw


def holds_exactly_its_rows(frame: pd.DataFrame, fmt: str) -> bool:
    """Whether the written file holds the frame's rows and no others: not a one-column CSV (an empty value is a blank
    line, which readers skip) nor a CSV with a carriage return in a text (pandas writes it unquoted: a line break)."""
    if fmt == "parquet":
        return True
    texts = [value for column in frame for value in frame[column] if isinstance(value, str)]
    return len(frame.columns) > 1 and not any("\r" in text for text in texts)


def assert_typed_as_the_config_says(frame: pd.DataFrame) -> None:
    """What validation relies on: ids and categories as text (or missing), numbers as float64 (or left as read when
    something in them is no number, for validation to report), the event time as UTC timestamps."""
    dataset = CFG.dataset
    for column in [dataset.id_column, *dataset.categorical_features]:
        if column in frame:
            assert all(isinstance(value, str) for value in frame[column].dropna()), column
    for column in [name for name in dataset.numeric_features if name in frame]:
        values = frame[column].dropna()
        if frame[column].dtype != np.float64:  # left as read: all missing, or holding something that is no number
            assert values.empty or not all(type(value) in (int, float) for value in values), column
    if dataset.event_time_column in frame:
        dtype = frame[dataset.event_time_column].dtype
        assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", dtype


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frame=frames(),
    fmt=st.sampled_from(["csv", "parquet"]),
    how=st.sampled_from(["none", "truncate", "garbage"]),
    at=st.integers(0, 10**6),
)
def test_any_file_is_either_rejected_clearly_or_validated(tmp_path_factory, frame, fmt, how, at):
    folder: Path = tmp_path_factory.mktemp("prop")
    path = folder / f"batch.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.astype(str).where(frame.notna(), None).to_parquet(path, index=False)
    path.write_bytes(mutate(path.read_bytes(), how, at))
    try:
        batch = load_batch(path, CFG.dataset)
    except DataRejected as rejected:
        event("rejected at load")
        assert rejected.path == str(path)  # the one line names the file
        assert rejected.reasons and all(reason.strip() and "\n" not in reason for reason in rejected.reasons)
        return
    event("reached validation")  # --hypothesis-show-statistics shows the mix of both paths
    assert_typed_as_the_config_says(batch.frame)
    assert batch.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()  # the bytes that were read
    if how == "none" and holds_exactly_its_rows(frame, fmt):
        assert batch.rows == len(frame)  # an intact file loses no row
    for require_target in (True, False):
        expectations = build_expectations(CFG.dataset, CFG.validation, PROFILE, require_target)
        report = validate_frame(batch.frame, expectations)
        assert report.success or report.failures
        assert all(isinstance(line, str) and line for line in report.failures)
        assert not any("could not run" in line for line in report.failures), report.failures
