"""Retraining policies a backtest compares: named ones (the config as is, the two baselines, the estimation trigger)
and config variants given as `path=value` changes."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from driftline.errors import ConfigError

CURRENT, NEVER, EVERY_BATCH, ESTIMATED = "current", "never", "every-batch", "estimated"
NAMED_POLICIES: dict[str, dict[str, Any]] = {
    CURRENT: {},  # the config as written
    # the first champion, frozen: no retrain on drift, after a batch, or on late labels
    NEVER: {"drift.retrain": False, "retraining.every_batch": False, "labels.retrain": False},
    EVERY_BATCH: {"retraining.every_batch": True},  # a retrain after every batch; the gate still decides
    ESTIMATED: {"drift.trigger": "estimated"},  # a retrain when the estimated metric fell, before any label
}
DEFAULT_POLICIES = [CURRENT, NEVER, EVERY_BATCH]

# What the backtest sets itself to keep every replay in its own workspace and registry.
ISOLATED = (
    "storage",
    "registry",
    "landing",
    "scoring.inbox",
    "labels.folder",
    "dashboard.workspace",
    "gate.mode",
    "rollout.mode",
)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Policy:
    """A name and the config changes that make it; every policy replays the same files from the same start."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        changes = [
            f"{path}={value if isinstance(value, str) else json.dumps(value)}" for path, value in self.overrides.items()
        ]
        return ", ".join(changes) or "the config as written"


def parse_assignment(text: str) -> tuple[str, Any]:
    """`drift.drift_share=0.5` → ("drift.drift_share", 0.5): the value is read as YAML (numbers, true/false,
    lists, mappings); the path names a config field and is checked when the config is built."""
    path, equals, value = text.partition("=")
    path = path.strip()
    if not equals or not _PATH.match(path):
        raise ConfigError(f"--set {text!r}: expected PATH=VALUE with a dotted config path, e.g. drift.drift_share=0.5")
    if any(path == isolated or path.startswith(f"{isolated}.") for isolated in ISOLATED):
        raise ConfigError(
            f"--set {text!r}: {path} is set by the backtest itself (every replay runs in its own "
            "temporary workspace and registry); leave it out"
        )
    try:
        return path, yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({error.problem})") from None


def variant(assignments: list[str]) -> Policy:
    """One `--set` group: its changes together make one policy, named by them."""
    overrides = dict(parse_assignment(text) for text in assignments)
    if not overrides:
        raise ConfigError("--set needs at least one PATH=VALUE")
    return Policy(" ".join(text.strip() for text in assignments), overrides)


def plan(names: list[str], variants: list[list[str]]) -> list[Policy]:
    """The policies to replay, in the order given: named ones first, then each `--set` group."""
    unknown = [name for name in names if name not in NAMED_POLICIES]
    if unknown:
        raise ConfigError(
            f"--policy {', '.join(unknown)}: unknown; use {', '.join(NAMED_POLICIES)} "
            "(or --set PATH=VALUE for a variant of the config)"
        )
    policies = [Policy(name, NAMED_POLICIES[name]) for name in dict.fromkeys(names)]
    policies += [variant(group) for group in variants]
    if not policies:
        raise ConfigError("nothing to replay: name a --policy or a --set variant")
    if len({policy.name for policy in policies}) < len(policies):
        raise ConfigError("two --set groups are the same; give each variant different changes")
    return policies


def with_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping with each `a.b.c` set (sections created where the config left them out)."""
    changed = copy.deepcopy(data)
    for path, value in overrides.items():
        *sections, key = path.split(".")
        node = changed
        for section in sections:
            if not isinstance(node.get(section), dict):
                node[section] = {}
            node = node[section]
        node[key] = value
    return changed
