"""`driftline ab plan|start|status|stop`: A/B tests of a version against the champion, decided on business outcomes."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_commands(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """The `ab` group of the parser."""
