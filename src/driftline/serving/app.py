"""The online service's app: `POST /predict` answered by the champion (a canary's challenger for some rows, or a
running A/B test's arms by unit), with health, readiness, Prometheus metrics and a description of the models served.

The request path, in order, all on the event loop: `BodyLimit` (a body over the limit is a 413, never parsed) →
`PredictRequest` (typed by the config: a bad request is a 422 naming the field) → `routing.route_rows` (which rows
the challenger, or an A/B test's arm B, answers) → the model's fast path on the validated rows (`modeling.fast`: no
DataFrame), or the `PredictionBatcher`'s thread for a model the pipeline answers and for large requests → `_answers`
→ JSON. The models are `ModelFollower.serving`, read once per request. Everything logged (prediction-log rows, shadow
answers) is built by the `PredictionLogBuffer`'s thread after the response is sent.
"""

import asyncio
import hmac
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic_core import to_json

from driftline.config import DriftlineConfig, FeatureType
from driftline.modeling.fast import Row, category_text
from driftline.modeling.pipeline import Predictions
from driftline.modeling.threads import limit_openmp
from driftline.registry import CHALLENGER, CHAMPION, ModelRef, registry_folders
from driftline.serving.batcher import PredictionBatcher
from driftline.serving.body_limit import BodyLimit, body_limit
from driftline.serving.follower import ModelFollower, ModelSource, ServedModel, Serving, follow_events
from driftline.serving.log_buffer import Answered, PredictionLogBuffer, logged_beside
from driftline.serving.routing import AB_ARMS, route_rows

FIRST_LOOK_SECONDS = 120  # at most this long before taking requests, registry read or not
INLINE_ROWS = 64  # the fast path answers up to this many rows on the event loop (~1 ms); larger requests queue

Finite = Annotated[float, Field(allow_inf_nan=False)]


# --- requests and answers ---------------------------------------------------------------------------------------------
def request_model(cfg: DriftlineConfig) -> type[BaseModel]:
    """`{"rows": [{feature: value, ...}, ...]}` typed by the config: numeric → finite number or null, categorical →
    text (whole numbers are read as their text, as in files) or null, text of at most `serving.max_text_chars`
    characters; the gate's watched columns that are not features may be given (logged as text, for live slices and
    fairness); unknown fields are refused."""
    dataset = cfg.dataset
    longest = cfg.serving.max_text_chars  # bounds the largest valid row, and so the body limit (`body_limit`)
    text = Annotated[str, Field(max_length=longest)] | Annotated[int, Field(gt=-(10**longest), lt=10**longest)]
    fields: dict[str, Any] = {}
    if dataset.id_column:
        id_required = cfg.serving.canary_share > 0 and cfg.serving.canary_routing == "id"
        fields[dataset.id_column] = (text, ...) if id_required else (text | None, None)
    for name, kind in dataset.features.items():
        value_type = Finite if kind is FeatureType.numeric else text
        fields[name] = (value_type | None, Field(..., description=f"{kind} feature"))
    for name in logged_beside(cfg):
        fields[name] = (
            text | Finite | None,
            Field(None, description="watched by the gate or an A/B test's unit: logged only"),
        )
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
    served_by: str = Field(description="champion, or challenger for canary rows and an A/B test's arm B")
    arm: str | None = Field(None, description="A or B while an A/B test runs (by the row's unit); null otherwise")


class PredictResponse(BaseModel):
    request_id: str
    model_version: str | None = Field(description="The version that answered every row; null when canary split them.")
    ab_test: str | None = Field(None, description="The id of the A/B test that routed the rows, if one runs")
    predictions: list[Prediction]


# --- answers ----------------------------------------------------------------------------------------------------------
def _answers(
    rows: Sequence[Row],
    predictions: Predictions,
    served: ServedModel,
    served_by: str,
    id_column: str | None,
    ab_arm: str | None = None,
) -> list[dict]:
    """One `Prediction` per row, as plain data (serialized once, with the response)."""
    labels = predictions.labels.tolist()
    classes = [str(label) for label in predictions.classes]
    probabilities = predictions.proba.tolist() if predictions.proba is not None else None
    return [
        {
            "id": category_text(row[id_column]) if id_column else None,
            "prediction": labels[i],
            "probabilities": dict(zip(classes, probabilities[i], strict=True)) if probabilities else None,
            "model_version": served.ref.version,
            "served_by": served_by,
            "arm": ab_arm,
        }
        for i, row in enumerate(rows)
    ]


# --- the app ----------------------------------------------------------------------------------------------------------
class ServiceMetrics:
    """Prometheus figures of one service process (its own registry, so tests may run several). A fleet service labels
    each figure by model (`by_model`); `of(model)` is what one model's app counts with. With several worker
    processes (`PROMETHEUS_MULTIPROC_DIR` set) each writes its figures to files there and /metrics sums them."""

    def __init__(self, by_model: bool = False) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        model = ["model"] if by_model else []
        self.requests = Counter(
            "driftline_requests", "Predict requests by outcome", [*model, "outcome"], registry=self.registry
        )
        self.rows = Counter(
            "driftline_rows",
            "Rows answered, by the model that answered",
            [*model, "served_by"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "driftline_request_latency_seconds",
            "Predict latency, request received to response ready",
            model,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.model_version = Gauge(
            "driftline_model_version",
            "Registered version behind each alias",
            [*model, "alias"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )
        self.swaps = Gauge(
            "driftline_model_swaps",
            "Times the served models changed",
            model,
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def of(self, model: str | None = None) -> "ModelMetrics":
        """The figures one model's app counts with: labelled `model` in a fleet service (`by_model`)."""
        return ModelMetrics(self, (model,) if model is not None else ())

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker)
        return generate_latest(every_worker)


@dataclass(frozen=True)
class ModelMetrics:
    """One model's figures in a `ServiceMetrics`."""

    service: ServiceMetrics
    model: tuple[str, ...]  # the model label's value in a fleet service, else empty

    def requests(self, outcome: str) -> Counter:
        return self.service.requests.labels(*self.model, outcome)

    def rows(self, served_by: str) -> Counter:
        return self.service.rows.labels(*self.model, served_by)

    def observe_latency(self, seconds: float) -> None:
        latency = self.service.latency
        (latency.labels(*self.model) if self.model else latency).observe(seconds)

    def swapped(self, serving: Serving, swaps: int) -> None:
        for alias, served in ((CHAMPION, serving.champion), (CHALLENGER, serving.challenger)):
            self.service.model_version.labels(*self.model, alias).set(float(served.ref.version) if served else 0)
        swaps_gauge = self.service.swaps
        (swaps_gauge.labels(*self.model) if self.model else swaps_gauge).set(swaps)


def create_app(
    cfg: DriftlineConfig,
    source: ModelSource,
    api_key: str | None = None,
    describe: Callable[[ModelRef], dict] | None = None,
    model_events: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
    metrics: ModelMetrics | None = None,
) -> FastAPI:
    """The FastAPI app. `describe` gives the lineage summary `GET /model` shows; `model_events`, when given, is a
    coroutine that calls its argument whenever the registry announces a move (e.g. Prefect's promotion events);
    `metrics`, when given, are where this model's figures are counted (a fleet service's, labelled by model): then
    /metrics shows every figure of that `ServiceMetrics`."""
    serving_cfg = cfg.serving
    with_challenger = serving_cfg.shadow or serving_cfg.canary_share > 0
    metrics = metrics or ServiceMetrics().of()
    follower = ModelFollower(
        source, cfg.dataset, serving_cfg.poll_seconds, with_challenger, metrics.swapped, follow_ab_tests=True
    )
    buffer = PredictionLogBuffer(cfg, registry_folders(cfg).prediction_log)
    batcher = PredictionBatcher(serving_cfg.max_rows)
    rng = np.random.default_rng()
    descriptions: dict[ModelRef, dict] = {}
    PredictRequest = request_model(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        follower.start()
        buffer.start()
        batcher.start()
        listener = asyncio.create_task(follow_events(model_events, follower.wake)) if model_events else None
        # Requests are taken once the registry was read: a worker process started beside others (`--workers`)
        # then takes no requests before its models are loaded (it answers 503 only when there is no champion).
        await asyncio.to_thread(follower.looked.wait, FIRST_LOOK_SECONDS)
        try:
            yield
        finally:
            if listener is not None:
                listener.cancel()
            await asyncio.to_thread(_stop, follower, buffer, batcher)  # joins threads, writes the log: off the loop

    app = FastAPI(title=f"driftline: {cfg.registry.model_name}", version="1", lifespan=lifespan)
    # Bodies over the limit are refused before they are read whole or parsed (413).
    app.add_middleware(BodyLimit, limit=body_limit(cfg, PredictRequest), refused=metrics.requests("too_large").inc)
    app.state.follower, app.state.log_buffer, app.state.metrics = follower, buffer, metrics

    async def require_key(request: Request) -> None:  # async: checked on the event loop, no thread hop
        if api_key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            metrics.requests("unauthorized").inc()
            raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        metrics.requests("invalid").inc()
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
        return PlainTextResponse(metrics.service.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/model", dependencies=[Depends(require_key)])
    def model() -> dict:
        serving = follower.serving

        def shown(served: ServedModel | None) -> dict | None:
            if served is None:
                return None
            if describe is not None and served.ref not in descriptions:
                descriptions[served.ref] = describe(served.ref)
            return {
                "version": served.ref.version,
                "run_id": served.ref.run_id,
                "loaded_at": served.loaded_at,
                "answered_by": served.answered_by,
                **descriptions.get(served.ref, {}),
            }

        ab = serving.ab
        return {
            "name": cfg.registry.model_name,
            "champion": shown(serving.champion),
            "challenger": shown(serving.challenger),
            "routing": {
                "shadow": serving_cfg.shadow and ab is None,
                "canary_share": serving_cfg.canary_share if ab is None else 0.0,
                "canary_routing": serving_cfg.canary_routing,
                "ab_test": None if ab is None else asdict(ab),
            },
        }

    @app.post("/predict", response_model=PredictResponse, dependencies=[Depends(require_key)])
    async def predict_rows(body: PredictRequest) -> Response:  # type: ignore[valid-type]
        started = time.perf_counter()
        serving = follower.serving  # read once: this request is answered by one consistent set of models
        if serving.champion is None:
            metrics.requests("not_ready").inc()
            raise HTTPException(503, f"no champion of {cfg.registry.model_name} loaded yet; see GET /ready")
        limit_openmp(1)  # as on the batcher's thread: OpenMP threads in small predictions only fight over the cores
        rows = [row.model_dump() for row in body.rows]  # type: ignore[attr-defined]
        answers: list[dict] = [{}] * len(rows)
        scored, ab = [], serving.ab
        for name, served, positions in route_rows(rows, serving, cfg, rng):
            part = rows if len(positions) == len(rows) else [rows[i] for i in positions]
            if served.fast is not None and len(part) <= INLINE_ROWS:
                predictions = served.fast.predict(part)
            else:
                predictions = await asyncio.wrap_future(batcher.submit(served, part))
            arm = AB_ARMS[name] if ab is not None else None
            for position, answer in zip(
                positions, _answers(part, predictions, served, name, cfg.dataset.id_column, arm), strict=True
            ):
                answers[position] = answer
            scored.append((name, served, positions, predictions))
            metrics.rows(name).inc(len(positions))
        latency = time.perf_counter() - started
        metrics.observe_latency(latency)
        metrics.requests("ok").inc()
        request_id = f"{random.getrandbits(128):032x}"  # an id, not a secret: uuid4's urandom call costs a syscall
        if cfg.scoring.log_predictions:
            buffer.add(
                Answered(
                    request_id=request_id,
                    rows=rows,
                    arms=scored,
                    latency_ms=latency * 1000,
                    scored_at=datetime.now(UTC),
                    shadow=serving.challenger if serving_cfg.shadow and ab is None else None,  # a test owns B
                )
            )
        versions = {served.ref.version for _, served, _, _ in scored}
        answer = {
            "request_id": request_id,
            "model_version": versions.pop() if len(versions) == 1 else None,
            "ab_test": ab.test_id if ab is not None else None,
            "predictions": answers,
        }
        return Response(to_json(answer), media_type="application/json")

    return app


def _stop(follower: ModelFollower, buffer: PredictionLogBuffer, batcher: PredictionBatcher) -> None:
    follower.stop()
    buffer.stop()  # the rows answered so far into the prediction log
    batcher.stop()


# --- error formatting -------------------------------------------------------------------------------------------------
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
