"""The models that answer: one immutable `Serving` value, kept in step with the registry's aliases and its A/B test.

Loading a moved version happens on the follower's thread, never on the request path: the model is read from the
registry and compiled for the fast path (`modeling.fast`; the pipeline answers for a model it cannot reproduce, and
the log says why). The new set of models is swapped in with one assignment, so a request that read
`follower.serving` once is answered by one consistent set. While an A/B test runs (followed with
`follow_ab_tests`), the set is its two arms and its split: arm A (the champion at its start) and arm B.
"""

import gc
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sklearn.pipeline import Pipeline

from driftline.config import DatasetConfig
from driftline.governance.rollout import AbSplit
from driftline.modeling.fast import FastPredictor, NotReproducible, Row, compile_pipeline, request_frame
from driftline.modeling.pipeline import Predictions, predict
from driftline.registry import CHAMPION, ModelRef
from driftline.registry.ab_tests import AbTest

log = logging.getLogger("driftline.serve")


class ModelSource(Protocol):
    """What the service needs from the registry (driftline.registry.Registry is one)."""

    def alias(self, alias: str) -> ModelRef | None: ...

    def live_challenger(self) -> ModelRef | None: ...

    def load_model(self, ref: ModelRef) -> Pipeline: ...

    def running_ab_test(self) -> AbTest | None: ...

    def version_ref(self, version: str) -> ModelRef: ...


@dataclass(frozen=True, eq=False)
class ServedModel:
    ref: ModelRef
    model: Pipeline
    loaded_at: str
    dataset: DatasetConfig
    fast: FastPredictor | None  # None: the pipeline answers (`answered_by` says why)
    answered_by: str

    def predict(self, rows: Sequence[Row]) -> Predictions:
        """The model's answers to validated request rows: from the fast path, or the pipeline on their frame."""
        if self.fast is not None:
            return self.fast.predict(rows)
        return predict(self.model, request_frame(rows, self.dataset), self.dataset)


def serve(ref: ModelRef, model: Pipeline, dataset: DatasetConfig) -> ServedModel:
    """A loaded model ready to answer: compiled for the fast path when that reproduces it exactly."""
    loaded_at = datetime.now(UTC).isoformat()
    try:
        fast = compile_pipeline(model, dataset)
    except NotReproducible as why:
        log.warning(
            "%s version %s is answered by its scikit-learn pipeline: the fast path cannot reproduce it (%s)",
            ref.name,
            ref.version,
            why,
        )
        return ServedModel(ref, model, loaded_at, dataset, None, f"the scikit-learn pipeline ({why})")
    log.info("%s version %s is answered by the fast path: %s", ref.name, ref.version, fast.tier)
    return ServedModel(ref, model, loaded_at, dataset, fast, f"the fast path: {fast.tier}")


@dataclass(frozen=True)
class Serving:
    """One consistent set of models; replaced whole, never changed in place. While an A/B test runs, `champion` is
    its arm A, `challenger` its arm B and `ab` its split."""

    champion: ServedModel | None = None
    challenger: ServedModel | None = None
    ab: AbSplit | None = None


class ModelFollower:
    """Keeps `serving` in step with the registry's aliases: loads moved versions in the background, then swaps.

    Polls every `poll_seconds`; `wake()` polls at once (a promotion event, an A/B test started or stopped). A registry
    that cannot be reached is logged and retried at the next poll while the loaded models keep answering. With
    `follow_ab_tests`, a running A/B test's arms are served (whatever `with_challenger` says) until it stops.
    """

    def __init__(
        self,
        source: ModelSource,
        dataset: DatasetConfig,
        poll_seconds: float,
        with_challenger: bool,
        swapped: Callable[[Serving, int], None] | None = None,
        follow_ab_tests: bool = False,
    ):
        self.source, self.dataset, self.swapped = source, dataset, swapped
        self.poll_seconds = poll_seconds
        self.with_challenger, self.follow_ab_tests = with_challenger, follow_ab_tests
        self.serving = Serving()
        self.swaps = 0
        self.last_error: str | None = None
        self.looked = threading.Event()  # set once the registry was read (or failed) for the first time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-model-follower", daemon=True)

    def _load(self, ref: ModelRef | None, current: ServedModel | None) -> ServedModel | None:
        if ref is None:
            return None
        if current is not None and current.ref == ref:
            return current
        return serve(ref, self.source.load_model(ref), self.dataset)

    def _load_version(self, version: str, current: ServedModel | None) -> ServedModel:
        if current is not None and current.ref.version == version:
            return current
        return self._load(self.source.version_ref(version), current)

    def refresh(self) -> bool:
        """Read the aliases (and the running A/B test); load what moved; swap in one assignment. True when anything
        changed."""
        before = self.serving
        test = self.source.running_ab_test() if self.follow_ab_tests else None
        if test is not None:  # arms by version: `challenger` may move for a moment while a retrain registers
            split = AbSplit.of(test)
            champion = self._load_version(test.champion_version, before.champion)
            challenger = self._load_version(test.version, before.challenger)
        else:
            split = None
            champion = self._load(self.source.alias(CHAMPION), before.champion)
            challenger = self._load(self.source.live_challenger(), before.challenger) if self.with_challenger else None
        if champion is before.champion and challenger is before.challenger and split == before.ab:
            return False
        self.serving = Serving(champion=champion, challenger=challenger, ab=split)
        gc.freeze()  # the loaded models' objects leave the collector's scans: full collections stay short
        self.swaps += 1
        if self.swapped is not None:
            self.swapped(self.serving, self.swaps)
        if split is not None:
            log.warning(
                "now serving A/B test %s: arm A v%s, arm B v%s on %.0f%% of the units by %s",
                split.test_id,
                _version(champion),
                _version(challenger),
                split.share * 100,
                split.unit_column,
            )
        else:
            log.warning("now serving champion %s, challenger %s", _version(champion), _version(challenger))
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                self.last_error = None
            except Exception as error:  # registry down, artifact missing: keep serving what is loaded
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("could not refresh the models from the registry: %s", self.last_error)
            self.looked.set()
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop following and let go of the models (a fleet service unloading this one frees their memory)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.serving = Serving()


def _version(served: ServedModel | None) -> str | None:
    return served.ref.version if served else None


async def follow_events(model_events: Callable[[Callable[[], None]], Awaitable[None]], wake: Callable[[], None]):
    """Registry moves announced by events wake the follower at once; polling still covers a lost connection."""
    try:
        await model_events(wake)
    except Exception as error:  # the event source is a shortcut, not a dependency
        log.warning("not following model events (%s); polling the registry only", error)
