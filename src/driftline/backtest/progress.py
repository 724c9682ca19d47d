"""Progress of a running backtest, for whoever started it in this process (the CLI's progress bar): the replay
announces each step, a listener set around the call hears it. Without a listener, announcing does nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step done: a policy's first training or one of its batches, and what happened, in a few words."""

    policy: str
    subject: str
    happened: str


Listener = Callable[[Step], None]
_listener: ContextVar[Listener | None] = ContextVar("driftline_backtest_listener", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def announce(step: Step) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(step)
