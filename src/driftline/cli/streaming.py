"""`driftline stream` and `driftline stream replay-dead-letters`: scoring a Kafka topic in micro-batches."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_commands(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """The `stream` command of the parser."""
