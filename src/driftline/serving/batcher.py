"""Concurrent requests' rows for the same model predicted together, on one thread (`PredictionBatcher`)."""

import queue
import threading
from concurrent.futures import Future

import pandas as pd
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from driftline.config import DatasetConfig
from driftline.modeling.pipeline import Predictions, predict

_thread_state = threading.local()


def one_openmp_thread() -> None:
    """Requests are answered concurrently on the server's threads; OpenMP threads inside one small prediction only
    fight over the cores (single rows got ~10x slower with them on a busy 2-core machine). Per thread, once."""
    if not getattr(_thread_state, "limited", False):
        threadpool_limits(1, user_api="openmp")
        _thread_state.limited = True


class PredictionBatcher:
    """Concurrent requests' rows for the same model predicted in one call, on one thread.

    A pass through the scikit-learn pipeline costs about the same for a few rows as for one, and that work holds the
    GIL, so threads predicting side by side add no capacity. Batching what queued up while the previous call ran
    lets capacity grow with load; an idle service still answers each request at once (a batch of one).
    """

    def __init__(self, dataset: DatasetConfig, max_rows: int):
        self.dataset, self.max_rows = dataset, max_rows
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="driftline-predict", daemon=True)

    def predict(self, model: Pipeline, frame: pd.DataFrame) -> Predictions:
        answer: Future = Future()
        self._queue.put((model, frame, answer))
        return answer.result()

    def _run(self) -> None:
        one_openmp_thread()
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
            for model in {id(item[0]): item[0] for item in waiting}.values():
                self._answer(model, [item for item in waiting if item[0] is model])

    def _answer(self, model: Pipeline, requests: list[tuple[Pipeline, pd.DataFrame, Future]]) -> None:
        try:
            frames = [frame for _, frame, _ in requests]
            together = predict(model, pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0],
                               self.dataset)  # fmt: skip
        except Exception as error:  # each waiting request fails with the error, as it would have alone
            for _, _, answer in requests:
                answer.set_exception(error)
            return
        start = 0
        for _, frame, answer in requests:
            stop = start + len(frame)
            proba = together.proba[start:stop] if together.proba is not None else None
            answer.set_result(Predictions(together.labels[start:stop], proba, together.classes))
            start = stop

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
