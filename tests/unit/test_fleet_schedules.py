"""A fleet's nightly schedules: models without crons of their own are spread over the night, each keeping scoring ->
drift -> performance, and stay where they are when other models come and go; explicit crons are untouched."""

from __future__ import annotations

from pathlib import Path

import yaml
from testkit.configs import write_config

from driftline.config import load_config, load_fleet
from driftline.fleet.schedules import spread_schedules


def _fleet(folder: Path, names: list[str], **fleet: object) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "fleet.yaml").write_text(
        yaml.safe_dump({"storage": {"workspace": str(folder.parent / "shared")}, "fleet": fleet})
    )
    for name in names:
        path = write_config(folder, f"{name}.yaml")
        data = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "storage"}
        path.write_text(yaml.safe_dump(data | {"registry": {"model_name": name}}, sort_keys=False))
    return folder


def _minute(cron: str) -> int:
    minute, hour, *_ = cron.split()
    return int(hour) * 60 + int(minute)


def _crons(folder: Path) -> dict[str, tuple[int, int, int]]:
    spread = {}
    for cfg in load_fleet(folder).configs:
        schedules = spread_schedules(cfg)
        spread[cfg.registry.model_name] = tuple(
            _minute(s.cron)
            for s in (schedules.batch_scoring, schedules.drift_monitoring, schedules.performance_monitoring)
        )
    return spread


def test_models_without_crons_are_spread_over_the_night_each_in_order_a_third_of_the_night_apart(tmp_path: Path):
    names = [f"model-{i:02d}" for i in range(20)]
    spread = _crons(_fleet(tmp_path / "fleet", names, night_start="22:30", night_hours=6))
    for scoring, drift, performance in spread.values():
        # 22:30 + 6 h = 04:30, the night's thirds 2 h each; minutes past midnight wrap
        assert (drift - scoring) % 1440 == 120 and (performance - drift) % 1440 == 120
        assert (scoring - 22 * 60 - 30) % 1440 < 120
    assert len({times[0] for times in spread.values()}) >= 15  # 20 models, not all at one minute


def test_a_models_slot_stays_when_another_model_is_added_or_removed(tmp_path: Path):
    folder = _fleet(tmp_path / "fleet", ["churn", "fraud", "demand-eu"])
    before = _crons(folder)
    _fleet(folder, ["demand-us"])
    (folder / "fraud.yaml").unlink()
    after = _crons(folder)
    assert after["churn"] == before["churn"] and after["demand-eu"] == before["demand-eu"]
    assert set(after) == {"churn", "demand-eu", "demand-us"}


def test_a_config_setting_any_cron_keeps_all_its_crons(tmp_path: Path):
    own = write_config(
        tmp_path,
        "own.yaml",
        schedules={"drift_monitoring": {"cron": "15 6 * * 1", "timezone": "Europe/Paris"}},
    )
    cfg = load_config(own)
    kept = spread_schedules(cfg)
    assert kept.drift_monitoring.cron == "15 6 * * 1" and kept.drift_monitoring.timezone == "Europe/Paris"
    assert kept.batch_scoring.cron == "0 2 * * *"  # its default, as the config left it: no spreading
