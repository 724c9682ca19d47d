"""Concurrent requests' rows for the same model predicted together, on one thread (`PredictionBatcher`)."""

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from driftline.modeling.fast import Row
from driftline.modeling.pipeline import Predictions
from driftline.modeling.threads import limit_openmp
from driftline.serving.follower import ServedModel


class PredictionBatcher:
    """Concurrent requests' rows for the same model predicted in one call, on one thread.

    The requests sent here are those too costly to answer on the event loop: a model the scikit-learn pipeline
    answers (a pass costs about the same for a few rows as for one, and holds the GIL, so threads side by side add
    no capacity) and large requests. Batching what queued up while the previous call ran lets capacity grow with
    load; an idle service still answers each request at once (a batch of one).
    """

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="driftline-predict", daemon=True)

    def submit(self, served: ServedModel, rows: Sequence[Row]) -> Future:
        """A future of `served.predict(rows)`, predicted together with what else is queued for the same model."""
        answer: Future = Future()
        self._queue.put((served, rows, answer))
        return answer

    def predict(self, served: ServedModel, rows: Sequence[Row]) -> Predictions:
        return self.submit(served, rows).result()

    def _run(self) -> None:
        # Requests are answered concurrently on the server's threads; OpenMP threads inside one small prediction only
        # fight over the cores (single rows got ~10x slower with them on a busy 2-core machine).
        limit_openmp(1)
        while (first := self._queue.get()) is not None:
            waiting, rows = [first], len(first[1])
            while rows < self.max_rows:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    self._queue.put(None)  # stop after this batch
                    break
                waiting.append(queued)
                rows += len(queued[1])
            for served in {id(item[0]): item[0] for item in waiting}.values():
                self._answer(served, [item for item in waiting if item[0] is served])

    def _answer(self, served: ServedModel, requests: list[tuple[ServedModel, Sequence[Row], Future]]) -> None:
        try:
            together = served.predict([row for _, rows, _ in requests for row in rows])
        except Exception as error:  # each waiting request fails with the error, as it would have alone
            for _, _, answer in requests:
                answer.set_exception(error)
            return
        start = 0
        for _, rows, answer in requests:
            stop = start + len(rows)
            proba = together.proba[start:stop] if together.proba is not None else None
            answer.set_result(Predictions(together.labels[start:stop], proba, together.classes))
            start = stop

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
