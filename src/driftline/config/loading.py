"""Loading a config from YAML, with every error rewritten as one line naming the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from driftline.config.root import DriftlineConfig
from driftline.errors import ConfigError


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message  # a cross-section rule: its message names the fields
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key; remove it or check its spelling"
    if error["type"] == "missing":
        return f"{path}: required but missing"
    found = error.get("input")
    shown = f" (got {found!r})" if found is not None and not isinstance(found, dict) else ""
    return f"{path}: {message}{shown}"


def _yaml_error(error: yaml.YAMLError) -> str:
    """The parser's complaint in one line: where (line and column, from 1), what it expected, in what it was."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return f"not valid YAML: {' '.join(str(error).split())}"
    mark, problem = error.problem_mark, error.problem or "syntax error"
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    within = ""
    if error.context:
        started = error.context_mark
        opened = f" opened at line {started.line + 1}, column {started.column + 1}" if started else ""
        within = f" ({error.context}{opened})"
    return f"not valid YAML at {where}: {problem}{within}; correct the YAML there"


def parse_config(data: Any, source: str = "<config>") -> DriftlineConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections (dataset:, registry:, ...), got {type(data).__name__}"
        )
    try:
        return DriftlineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: str | Path) -> DriftlineConfig:
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: config file not found; copy configs/demo.yaml to start one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read config: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: {_yaml_error(exc)}") from None
    config = parse_config(data, str(config_path))
    config._source = config_path.resolve()
    config._source_text = text
    return config
