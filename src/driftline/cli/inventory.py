"""The fleet inventory: `driftline fleet status` (a row of evidence per model, flags) and `fleet report` (HTML)."""

from __future__ import annotations

import argparse


def cmd_fleet_status(args: argparse.Namespace) -> None:  # PLACEHOLDER: helper H3 writes it
    raise NotImplementedError


def cmd_fleet_report(args: argparse.Namespace) -> None:  # PLACEHOLDER: helper H3 writes it
    raise NotImplementedError
