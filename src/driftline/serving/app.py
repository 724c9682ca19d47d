"""The online service: the champion behind `POST /predict`, following the registry, with shadow and canary routing.

Requests are checked against the config's features (the same types the registered model's signature carries), so a
bad request is a 422 naming the field. The models that answer are one immutable `Serving` value, replaced whole when
the registry moves an alias: a request reads it once and is answered by one consistent set of models, and loading a
new version happens in the background, never on the request path. Everything logged (prediction log rows, shadow
answers) is done after the response is sent.
"""

import gc
import hmac
import logging
import queue
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
import pandas as pd
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, create_model
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from driftline.config import DatasetConfig, DriftlineConfig, FeatureType
from driftline.data import prediction_log
from driftline.governance import rollout
from driftline.registry import CHALLENGER, CHAMPION, ModelRef
from driftline.training.modeling import Predictions, predict

log = logging.getLogger("driftline.serve")

SOURCE = "online"  # the prediction log's `source` for rows the service answered
Finite = Annotated[float, Field(allow_inf_nan=False)]


# --- the models that answer ----------------------------------------------------------------------------------------
class ModelSource(Protocol):
    """What the service needs from the registry (driftline.registry.Registry is one)."""

    def alias(self, alias: str) -> ModelRef | None: ...

    def live_challenger(self) -> ModelRef | None: ...

    def load_model(self, ref: ModelRef) -> Pipeline: ...


@dataclass(frozen=True)
class ServedModel:
    ref: ModelRef
    model: Pipeline
    loaded_at: str


@dataclass(frozen=True)
class Serving:
    """One consistent set of models; replaced whole, never changed in place."""

    champion: ServedModel | None = None
    challenger: ServedModel | None = None


class ModelFollower:
    """Keeps `serving` in step with the registry's aliases: loads moved versions in the background, then swaps.

    Polls every `poll_seconds`; `wake()` polls at once (a promotion event). A registry that cannot be reached is
    logged and retried at the next poll while the loaded models keep answering.
    """

    def __init__(self, source: ModelSource, poll_seconds: float, with_challenger: bool):
        self.source = source
        self.poll_seconds = poll_seconds
        self.with_challenger = with_challenger
        self.serving = Serving()
        self.swaps = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-model-follower", daemon=True)

    def _load(self, ref: ModelRef | None, current: ServedModel | None) -> ServedModel | None:
        if ref is None:
            return None
        if current is not None and current.ref == ref:
            return current
        return ServedModel(ref=ref, model=self.source.load_model(ref), loaded_at=datetime.now(UTC).isoformat())

    def refresh(self) -> bool:
        """Read the aliases; load what moved; swap in one assignment. True when anything changed."""
        before = self.serving
        champion = self._load(self.source.alias(CHAMPION), before.champion)
        challenger = self._load(self.source.live_challenger(), before.challenger) if self.with_challenger else None
        if champion is before.champion and challenger is before.challenger:
            return False
        self.serving = Serving(champion=champion, challenger=challenger)
        gc.freeze()  # the loaded models' objects leave the collector's scans: full collections stay short
        self.swaps += 1
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
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)


def _version(served: ServedModel | None) -> str | None:
    return served.ref.version if served else None


# --- the prediction log --------------------------------------------------------------------------------------------
JOIN_EVERY = 100  # buffered request frames joined into one as they come, so no flush stalls the requests


class PredictionLogBuffer:
    """Rows answered online, written to the prediction log as one new file per `flush_rows` rows or `flush_seconds`.

    Files are written whole (temp name, then rename) by `prediction_log.append`, so monitoring never reads half a file.
    """

    def __init__(self, log_dir: Path, flush_rows: int, flush_seconds: float):
        self.log_dir, self.flush_rows, self.flush_seconds = log_dir, flush_rows, flush_seconds
        self._frames: list[pd.DataFrame] = []
        self._small = 0  # frames added since the last join
        self._rows = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-log-flusher", daemon=True)
        self.files_written = 0

    def add(self, rows: pd.DataFrame) -> None:
        with self._lock:
            self._frames.append(rows)
            self._small += 1
            if self._small >= JOIN_EVERY:  # one join of 1,500 one-row frames at flush held the GIL for ~0.3 s
                self._frames[-JOIN_EVERY:] = [pd.concat(self._frames[-JOIN_EVERY:], ignore_index=True)]
                self._small = 0
            self._rows += len(rows)
            self._oldest = self._oldest or time.monotonic()
            due = self._rows >= self.flush_rows
        if due:
            self.flush()

    def flush(self) -> Path | None:
        with self._lock:
            frames, self._frames, self._rows, self._oldest, self._small = self._frames, [], 0, None, 0
        if not frames:
            return None
        path = prediction_log.append(pd.concat(frames, ignore_index=True), self.log_dir, SOURCE)
        self.files_written += 1
        return path

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            oldest = self._oldest
            if oldest is not None and time.monotonic() - oldest >= self.flush_seconds:
                try:
                    self.flush()
                except OSError as error:  # disk full or gone: the rows are lost, the service keeps answering
                    log.error("could not write the prediction log: %s", error)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()


# --- requests and answers ------------------------------------------------------------------------------------------
def request_model(cfg: DriftlineConfig) -> type[BaseModel]:
    """`{"rows": [{feature: value, ...}, ...]}` typed by the config: numeric → finite number or null, categorical →
    text (whole numbers are read as their text, as in files) or null; unknown fields are refused."""
    dataset = cfg.dataset
    fields: dict[str, Any] = {}
    if dataset.id_column:
        id_required = cfg.serving.canary_share > 0 and cfg.serving.canary_routing == "id"
        fields[dataset.id_column] = (str | int, ...) if id_required else (str | int | None, None)
    for name, kind in dataset.features.items():
        value_type = Finite if kind is FeatureType.numeric else str | int
        fields[name] = (value_type | None, Field(..., description=f"{kind} feature"))
    row = create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(min_length=1, max_length=cfg.serving.max_rows, description="The rows to score.")),
    )


class Prediction(BaseModel):
    id: str | None = None
    prediction: Any
    probabilities: dict[str, float] | None = None
    model_version: str
    served_by: str = Field(description="champion, or challenger for canary rows")


class PredictResponse(BaseModel):
    request_id: str
    model_version: str | None = Field(description="The version that answered every row; null when canary split them.")
    predictions: list[Prediction]


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


def _frame(rows: list[BaseModel], cfg: DriftlineConfig) -> pd.DataFrame:
    dataset = cfg.dataset
    columns = ([dataset.id_column] if dataset.id_column else []) + dataset.feature_names
    frame = pd.DataFrame.from_records([row.model_dump() for row in rows], columns=columns)
    # as data files are read: categories and ids are text (3 → "3"), a missing category is NaN
    for name in [*dataset.categorical_features, *([dataset.id_column] if dataset.id_column else [])]:
        frame[name] = frame[name].map(lambda value: np.nan if value is None else str(value))
    return frame


def _predictions_json(frame: pd.DataFrame, predictions: Predictions, served: ServedModel, arm: str,
                      cfg: DriftlineConfig) -> list[Prediction]:  # fmt: skip
    ids = frame[cfg.dataset.id_column].tolist() if cfg.dataset.id_column else [None] * len(frame)
    labels = predictions.labels.tolist()
    classes = [str(label) for label in predictions.classes]
    probabilities = predictions.proba.tolist() if predictions.proba is not None else None
    return [
        Prediction(
            id=ids[i], prediction=labels[i], model_version=served.ref.version, served_by=arm,
            probabilities=dict(zip(classes, probabilities[i], strict=True)) if probabilities else None,
        )
        for i in range(len(frame))
    ]  # fmt: skip


@dataclass
class Answered:
    """What the background step logs after the response went out."""

    request_id: str
    frame: pd.DataFrame
    arms: list[tuple[str, ServedModel, np.ndarray, Predictions]]  # (served_by, model, row mask, predictions)
    latency_ms: float
    scored_at: datetime
    shadow: ServedModel | None  # with shadow on: the challenger, which scores the same rows off the response path


def log_answer(answered: Answered, cfg: DriftlineConfig, buffer: PredictionLogBuffer) -> None:
    """Prediction-log rows of one request; with shadow on, the challenger scores the same rows here, beside them."""
    one_openmp_thread()
    parts = []
    for arm, served, mask, predictions in answered.arms:
        rows = prediction_log.records(
            answered.frame[mask].reset_index(drop=True), predictions, cfg, served.ref.version, SOURCE,
            answered.request_id, answered.scored_at, served_by=arm, latency_ms=answered.latency_ms,
        )  # fmt: skip
        if answered.shadow is not None:
            shadow = predict(answered.shadow.model, answered.frame[mask], cfg.dataset)
            prediction_log.add_shadow(rows, shadow, answered.shadow.ref.version, cfg.dataset.task)
        parts.append(rows)
    buffer.add(pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0])


# --- the app -------------------------------------------------------------------------------------------------------
class ServiceMetrics:
    """Prometheus figures of one service instance (its own registry, so tests may run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("driftline_requests", "Predict requests by outcome", ["outcome"],
                                registry=self.registry)  # fmt: skip
        self.rows = Counter("driftline_rows", "Rows answered, by the model that answered", ["served_by"],
                            registry=self.registry)  # fmt: skip
        self.latency = Histogram(
            "driftline_request_latency_seconds", "Predict latency, request received to response ready",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry,
        )  # fmt: skip
        self.model_version = Gauge("driftline_model_version", "Registered version behind each alias", ["alias"],
                                   registry=self.registry)  # fmt: skip
        self.swaps = Gauge("driftline_model_swaps", "Times the served models changed", registry=self.registry)


def create_app(
    cfg: DriftlineConfig,
    source: ModelSource,
    api_key: str | None = None,
    describe: Callable[[ModelRef], dict] | None = None,
    model_events: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
) -> FastAPI:
    """The FastAPI app. `describe` gives the lineage summary `GET /model` shows; `model_events`, when given, is a
    coroutine that calls its argument whenever the registry announces a move (e.g. Prefect's promotion events)."""
    serving_cfg = cfg.serving
    with_challenger = serving_cfg.shadow or serving_cfg.canary_share > 0
    follower = ModelFollower(source, serving_cfg.poll_seconds, with_challenger)
    buffer = PredictionLogBuffer(cfg.folders.prediction_log, serving_cfg.log_flush_rows, serving_cfg.log_flush_seconds)
    batcher = PredictionBatcher(cfg.dataset, serving_cfg.max_rows)
    metrics = ServiceMetrics()
    rng = np.random.default_rng()
    descriptions: dict[ModelRef, dict] = {}
    PredictRequest = request_model(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import asyncio

        follower.start()
        buffer.start()
        batcher.start()
        listener = asyncio.create_task(_follow_events(model_events, follower.wake)) if model_events else None
        try:
            yield
        finally:
            if listener is not None:
                listener.cancel()
            follower.stop()
            buffer.stop()
            batcher.stop()

    app = FastAPI(title=f"driftline: {cfg.registry.model_name}", version="1", lifespan=lifespan)
    app.state.follower, app.state.log_buffer, app.state.metrics = follower, buffer, metrics

    def require_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            metrics.requests.labels("unauthorized").inc()
            raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        metrics.requests.labels("invalid").inc()
        problems = [f"{_field(e['loc'])}: {e['msg']}" for e in error.errors()]
        return JSONResponse(
            status_code=422, content={"message": "; ".join(problems[:20]), "detail": _jsonable(error.errors())}
        )

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        champion = follower.serving.champion
        if champion is None:
            reason = follower.last_error or f"no champion of {cfg.registry.model_name} loaded yet"
            return JSONResponse(status_code=503, content={"ready": False, "reason": reason})
        return JSONResponse({"ready": True, "champion": champion.ref.version})

    @app.get("/metrics", dependencies=[Depends(require_key)])
    def prometheus() -> PlainTextResponse:
        serving = follower.serving
        for alias, served in ((CHAMPION, serving.champion), (CHALLENGER, serving.challenger)):
            metrics.model_version.labels(alias).set(float(served.ref.version) if served else 0)
        metrics.swaps.set(follower.swaps)
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/model", dependencies=[Depends(require_key)])
    def model() -> dict:
        serving = follower.serving

        def shown(served: ServedModel | None) -> dict | None:
            if served is None:
                return None
            if describe is not None and served.ref not in descriptions:
                descriptions[served.ref] = describe(served.ref)
            return {"version": served.ref.version, "run_id": served.ref.run_id, "loaded_at": served.loaded_at,
                    **descriptions.get(served.ref, {})}  # fmt: skip

        return {
            "name": cfg.registry.model_name, "champion": shown(serving.champion),
            "challenger": shown(serving.challenger),
            "routing": {"shadow": serving_cfg.shadow, "canary_share": serving_cfg.canary_share,
                        "canary_routing": serving_cfg.canary_routing},
        }  # fmt: skip

    @app.post("/predict", response_model=PredictResponse, dependencies=[Depends(require_key)])
    def predict_rows(body: PredictRequest, background: BackgroundTasks) -> PredictResponse:  # type: ignore[valid-type]
        started = time.perf_counter()
        serving = follower.serving  # read once: this request is answered by one consistent set of models
        if serving.champion is None:
            metrics.requests.labels("not_ready").inc()
            raise HTTPException(503, f"no champion of {cfg.registry.model_name} loaded yet; see GET /ready")
        request_id = uuid.uuid4().hex
        one_openmp_thread()
        frame = _frame(body.rows, cfg)
        to_challenger = np.zeros(len(frame), dtype=bool)
        if serving.challenger is not None and serving_cfg.canary_share > 0:
            ids = frame[cfg.dataset.id_column] if serving_cfg.canary_routing == "id" else None
            to_challenger = canary_rows(ids, len(frame), serving_cfg.canary_share, serving.challenger, rng)
        arms = [(name, served, mask) for name, served, mask in
                ((CHAMPION, serving.champion, ~to_challenger), (CHALLENGER, serving.challenger, to_challenger))
                if mask.any()]  # fmt: skip
        answers: list[Prediction | None] = [None] * len(frame)
        scored = []
        for name, served, mask in arms:
            part = frame[mask]
            predictions = batcher.predict(served.model, part)
            for position, answer in zip(np.flatnonzero(mask), _predictions_json(part, predictions, served, name, cfg),
                                        strict=True):  # fmt: skip
                answers[position] = answer
            scored.append((name, served, mask, predictions))
            metrics.rows.labels(name).inc(int(mask.sum()))
        latency = time.perf_counter() - started
        metrics.latency.observe(latency)
        metrics.requests.labels("ok").inc()
        if cfg.scoring.log_predictions:
            answered = Answered(
                request_id=request_id, frame=frame, arms=scored, latency_ms=latency * 1000,
                scored_at=datetime.now(UTC), shadow=serving.challenger if serving_cfg.shadow else None,
            )  # fmt: skip
            background.add_task(log_answer, answered, cfg, buffer)
        versions = {served.ref.version for _, served, _ in arms}
        return PredictResponse(
            request_id=request_id, model_version=versions.pop() if len(versions) == 1 else None, predictions=answers
        )

    return app


def canary_rows(ids: pd.Series | None, rows: int, share: float, challenger: ServedModel,
                rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Which rows the challenger answers: by the id's hash salted with its version (stable per id in every process,
    as `rollout.route` routes batch canaries), or at random when there are no ids to route by."""
    if ids is None:
        return rng.random(rows) < share
    return rollout.route(ids, share, salt=challenger.ref.version) == rollout.CANARY_ARM


async def _follow_events(model_events: Callable[[Callable[[], None]], Awaitable[None]], wake: Callable[[], None]):
    """Registry moves announced by events wake the follower at once; polling still covers a lost connection."""
    try:
        await model_events(wake)
    except Exception as error:  # the event source is a shortcut, not a dependency
        log.warning("not following model events (%s); polling the registry only", error)


def _field(location: tuple | list) -> str:
    """('body', 'rows', 0, 'age') → 'rows[0].age'."""
    text = ""
    for part in location:
        if part == "body":
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _jsonable(errors: list[dict]) -> list[dict]:
    return [{key: value for key, value in e.items() if key in ("loc", "msg", "type")} for e in errors]
