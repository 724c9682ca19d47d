"""Where the project, its demo config and the `driftline` console script are."""

import sys
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEMO_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"
DRIFTLINE = Path(sys.executable).parent / "driftline"
WEEK = pd.Timedelta(days=7)
