"""Where the project, its demo config and the `driftline` console script are; test frames written as files."""

import sys
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEMO_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"
DRIFTLINE = Path(sys.executable).parent / "driftline"
WEEK = pd.Timedelta(days=7)


def write_frames(folder: Path, frames: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Each frame as the file its name says (Parquet or CSV) in `folder`, by its stem."""
    paths = {}
    for name, frame in frames.items():
        path = folder / name
        frame.to_parquet(path, index=False) if name.endswith(".parquet") else frame.to_csv(path, index=False)
        paths[Path(name).stem] = path
    return paths
