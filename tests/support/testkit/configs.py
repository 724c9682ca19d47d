"""Test configs: the demo config with its workspace in a test folder and a faster model."""

from pathlib import Path

import yaml

from testkit.paths import DEMO_CONFIG


def write_demo_config(folder: Path, **sections: dict) -> Path:
    """The demo config in `folder` (workspace there too), with a faster model; overrides merge per section."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(folder / "workspace")}
    data["model"]["params"] = {"max_iter": 60, "learning_rate": 0.1, "max_leaf_nodes": 15}
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    path = folder / "driftline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
