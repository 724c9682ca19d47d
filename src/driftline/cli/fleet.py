"""The fleet's commands: a model's merged config, deploying a folder of configs, pausing and resuming models."""

from __future__ import annotations

import argparse

import yaml

from driftline.cli.render import console
from driftline.config import load_config


def cmd_config_show(args: argparse.Namespace) -> None:
    """The config as the model runs with it: its file over its folder's fleet.yaml, with every default filled in."""
    cfg = load_config(args.config)
    console.print(f"# {cfg.source}: the config as it runs (fleet.yaml beside it, then defaults, filled in)")
    console.print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="", highlight=False)


def cmd_deploy_fleet(args: argparse.Namespace) -> None:  # PLACEHOLDER: helper H1 writes it
    raise NotImplementedError


def cmd_fleet_pause(args: argparse.Namespace) -> None:  # PLACEHOLDER: helper H1 writes it
    raise NotImplementedError


def cmd_fleet_resume(args: argparse.Namespace) -> None:  # PLACEHOLDER: helper H1 writes it
    raise NotImplementedError
