"""The fleet service: one process answers `POST /models/<name>/predict` for every model of a folder of configs.

Each model is answered by its own online service (`create_app`: its API key, canary, shadow or A/B test, prediction
log, hot swap on its own promotion and A/B test events), started on the model's first request and stopped when it is
the least recently used past the bound (`ModelCache`). The fleet's own routes: `GET /models` (every model, its
version, its routing, whether it is loaded, and the configs that did not load), `GET /models/<name>/ready` (from the
registry when the model is not loaded: a probe never loads a model), `GET /metrics` (every model's figures, labelled
by model), `GET /health`. A request naming no model of the fleet is a 404 that names the fleet's models.
"""

import asyncio
import hmac
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import Receive, Scope, Send

from driftline.config import DriftlineConfig, Fleet
from driftline.governance.rollout import AbSplit
from driftline.registry import Registry
from driftline.serving.app import ModelMetrics, ServiceMetrics
from driftline.serving.model_cache import ModelCache, resident_mb

PREFIX = "/models/"
FORWARDED = ("/predict", "/model")  # answered by the model's own app, started for them if it is not running

ModelAppBuilder = Callable[[DriftlineConfig, ModelMetrics], FastAPI]


class FleetService:
    """The ASGI app of a fleet: requests to a model's `FORWARDED` routes go to its running app, the rest to the
    fleet's own routes (`front`)."""

    def __init__(self, fleet: Fleet, build: ModelAppBuilder, api_key: str | None = None):
        shared = fleet.workspace.serving  # the fleet's settings: set them in fleet.yaml
        self.fleet = fleet
        self.configs = {cfg.registry.model_name: cfg for cfg in fleet.configs}
        self.metrics = ServiceMetrics(by_model=True)
        self.cache = ModelCache(
            lambda name: build(self.configs[name], self.metrics.of(name)),
            shared.max_loaded_models,
            shared.max_loaded_mb,
        )
        self.front = _front(self, api_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            name, _, rest = scope["path"][len(PREFIX) :].partition("/")
            route = f"/{rest}"
            if name in self.configs and route in FORWARDED:
                async with self.cache.use(name) as app:
                    # As a mounted app sees it: the model's app answers its own /predict and /model.
                    root_path = f"{scope.get('root_path', '')}{PREFIX}{name}"
                    await app(
                        {**scope, "path": route, "raw_path": route.encode(), "root_path": root_path}, receive, send
                    )
                return
        await self.front(scope, receive, send)

    def known(self, name: str) -> DriftlineConfig:
        """The config of a model of the fleet, or a 404 naming the fleet's models."""
        if name not in self.configs:
            raise HTTPException(
                404, f"no model {name!r} in this fleet ({self.fleet.folder}); its models: {', '.join(self.configs)}"
            )
        return self.configs[name]

    def described(self, name: str) -> dict:
        """One row of GET /models: the version served (the registry's champion when the model is not loaded)."""
        cfg = self.configs[name]
        entry = self.cache.loaded.get(name)
        if entry is not None:
            serving = entry.app.state.follower.serving
            champion = serving.champion.ref.version if serving.champion else None
            challenger = serving.challenger.ref.version if serving.challenger else None
            ab = serving.ab
        else:
            registry = Registry(cfg)
            ref, test = registry.champion(), registry.running_ab_test()
            champion, challenger = (ref.version if ref else None), None
            ab = AbSplit.of(test) if test is not None else None
        return {
            "name": name,
            "config": str(cfg.source),
            "loaded": entry is not None,
            "champion": champion,
            "challenger": challenger,
            "routing": _routing(cfg, ab),
            "loads": self.cache.loads.get(name, 0),
        }


def _front(service: FleetService, api_key: str | None) -> FastAPI:
    """The fleet's own routes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # the configs that did not load are reported by `driftline serve` and GET /models
        try:
            yield
        finally:
            await service.cache.close()  # every loaded model's prediction-log rows written

    app = FastAPI(title=f"driftline fleet: {service.fleet.folder.name}", version="1", lifespan=lifespan)

    async def require_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send the fleet's key in the X-API-Key header")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/models", dependencies=[Depends(require_key)])
    async def models() -> dict:
        rows = await asyncio.to_thread(lambda: [service.described(name) for name in service.configs])
        cache = service.cache
        return {
            "models": rows,
            "broken": [{"config": str(broken.path), "problem": broken.problem} for broken in service.fleet.broken],
            "loaded": len(cache.loaded),
            "max_loaded_models": cache.max_loaded,
            "max_loaded_mb": cache.max_loaded_mb,
            "resident_mb": resident_mb(),
        }

    @app.get("/metrics", dependencies=[Depends(require_key)])
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/models/{name}/ready")
    async def ready(name: str) -> JSONResponse:
        cfg = service.known(name)
        entry = service.cache.loaded.get(name)
        if entry is not None:
            follower = entry.app.state.follower
            champion = follower.serving.champion
            version, reason = (champion.ref.version if champion else None), follower.last_error
        else:
            ref = await asyncio.to_thread(lambda: Registry(cfg).champion())
            version, reason = (ref.version if ref else None), None
        if version is None:
            reason = reason or f"no champion of {name} in the registry yet"
            return JSONResponse(
                status_code=503, content={"ready": False, "loaded": entry is not None, "reason": reason}
            )
        return JSONResponse({"ready": True, "champion": version, "loaded": entry is not None})

    @app.api_route("/models/{name}/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def elsewhere(name: str, rest: str) -> None:
        service.known(name)
        raise HTTPException(404, f"no route /{rest} for a model; a model answers POST /predict, GET /model /ready")

    return app


def _routing(cfg: DriftlineConfig, ab: AbSplit | None) -> str:
    """How the model's requests are answered: by a running A/B test's arms, the champion alone, with a shadow, or a
    canary share."""
    if ab is not None:
        return f"A/B test {ab.test_id}: v{ab.version} on {ab.share:g} of the units by {ab.unit_column}"
    if cfg.serving.shadow:
        return "shadow"
    return f"canary {cfg.serving.canary_share:g}" if cfg.serving.canary_share > 0 else "champion"
