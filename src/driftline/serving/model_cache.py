"""The fleet service's loaded models: each model's app started on its first request, the least recently used
stopped past `serving.max_loaded_models` or the resident-memory budget `serving.max_loaded_mb`.

A loaded model is one model's own online service (`create_app`: its follower, prediction-log buffer and batcher
threads, its hot swap), started and stopped through that app's lifespan. Stopping it writes its buffered
prediction-log rows and lets go of its models; a model answering a request, or loading, is never stopped.
"""

import asyncio
import ctypes
import gc
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

log = logging.getLogger("driftline.serve")


def resident_mb() -> float | None:
    """This process's resident memory in MB (Linux's /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _give_back_memory() -> None:
    """Free an unloaded model's objects now, and hand the freed pages back to the system.

    The follower freezes the collector after each swap (`gc.freeze`: full collections stay short), so the cycles of
    an unloaded model's app would never be collected: unfreeze, collect, freeze again. glibc keeps freed small
    blocks in its arenas; `malloc_trim` returns them, so the resident size the budget reads goes down."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory is reused by this process, not returned
        pass


@dataclass(eq=False)
class LoadedModel:
    """One model's running app and what keeps it running."""

    name: str
    app: FastAPI
    running: AsyncExitStack
    answering: int = 0  # requests it is answering now: it is not stopped while any are


class ModelCache:
    """The fleet's loaded models, least recently used first; `use(name)` starts a model's app if it is not running."""

    def __init__(
        self,
        build: Callable[[str], FastAPI],
        max_loaded: int,
        max_loaded_mb: float | None = None,
        measure: Callable[[], float | None] = resident_mb,
    ):
        self.build, self.max_loaded, self.max_loaded_mb, self.measure = build, max_loaded, max_loaded_mb, measure
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()  # least recently used first
        self.loads: dict[str, int] = {}  # times each model was started
        self.unloads = 0
        self._locks: dict[str, asyncio.Lock] = {}

    def is_loaded(self, name: str) -> bool:
        return name in self.loaded

    @asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[FastAPI]:
        """The model's running app, started first if it is not running; it is not stopped before the block ends."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one start at a time per model; requests for it meanwhile wait here
            entry = self.loaded.get(name)
            started = entry is None
            if entry is None:
                entry = await self._start(name)
            entry.answering += 1
            self.loaded.move_to_end(name)
        try:
            if started:
                await self._trim()
            yield entry.app
        finally:
            entry.answering -= 1

    async def _start(self, name: str) -> LoadedModel:
        began = time.perf_counter()
        app = self.build(name)
        running = AsyncExitStack()
        await running.enter_async_context(app.router.lifespan_context(app))  # reads the registry, loads the champion
        entry = LoadedModel(name, app, running)
        self.loaded[name] = entry
        self.loads[name] = self.loads.get(name, 0) + 1
        log.info("loaded %s in %.2f s (%d loaded)", name, time.perf_counter() - began, len(self.loaded))
        return entry

    def _over_bound(self) -> bool:
        if len(self.loaded) > self.max_loaded:
            return True
        if self.max_loaded_mb is None:
            return False
        resident = self.measure()
        return resident is not None and resident > self.max_loaded_mb

    async def _trim(self) -> None:
        """Stop the least recently used models that are idle until the bound and the budget hold (or none is idle)."""
        while self._over_bound():
            idle = (
                name for name, entry in self.loaded.items() if entry.answering == 0 and not self._locks[name].locked()
            )
            victim = next(idle, None)
            if victim is None:
                return
            await self.unload(victim)

    async def unload(self, name: str) -> None:
        """Stop a model's app: its prediction-log rows written, its models let go; its next request starts it again."""
        entry = self.loaded.pop(name, None)
        if entry is None:
            return
        async with self._locks[name]:  # a request for it now waits for the stop, then starts it afresh
            await entry.running.aclose()
            del entry  # its app is garbage now: collected below
            await asyncio.to_thread(_give_back_memory)
        self.unloads += 1
        log.info("unloaded %s (least recently used; %d loaded)", name, len(self.loaded))

    async def close(self) -> None:
        for name in list(self.loaded):
            await self.unload(name)
