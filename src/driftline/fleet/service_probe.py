"""A model's online service seen from outside: is it ready (GET /ready), and its /predict latency histogram (GET
/metrics, Prometheus text); a refused or timed-out connection is a failed probe, never an error."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from driftline.config import DriftlineConfig
from driftline.config.operations import ServingConfig

LATENCY_HISTOGRAM = "driftline_request_latency_seconds"  # serving.app.ServiceMetrics.latency
PROBE_TIMEOUT_SECONDS = 3.0  # a service slower than this to say it is ready is not available
MODEL_LABEL = "model"  # a fleet service's series carry the model they measure
ANY_HOST = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # a service listening everywhere is probed on this machine


@dataclass(frozen=True)
class Probe:
    """What one probe of a service saw."""

    ready: bool
    answer: str  # what /ready said ("ready, champion v3"), or why there was no ready answer
    latency_buckets: dict[str, float] | None  # cumulative /predict counts by upper bound ("le"); None: not read


@dataclass(frozen=True)
class Service:
    """Where a model's online service is probed."""

    model: str
    ready_url: str
    metrics_url: str
    api_key: str | None  # the key /metrics asks for (the fleet service's own, in a fleet)


def _address(host: str, port: int) -> str:
    host = ANY_HOST.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def service_of(cfg: DriftlineConfig, fleet_service: ServingConfig | None) -> Service:
    """A model of a fleet (`fleet_service`: the fleet service's settings, its fleet.yaml's) is probed at the fleet
    service's GET /models/<name>/ready and GET /metrics (series labelled by model); a single config at its own
    service's /ready and /metrics. `sla.service_url`, when set, replaces http://<serving.host>:<serving.port>."""
    name = cfg.registry.model_name
    if fleet_service is None:
        base = cfg.sla.service_url or _address(cfg.serving.host, cfg.serving.port)
        return Service(name, f"{base}/ready", f"{base}/metrics", os.environ.get(cfg.serving.api_key_env) or None)
    base = cfg.sla.service_url or _address(fleet_service.host, fleet_service.port)
    key = os.environ.get(fleet_service.api_key_env) or None
    return Service(name, f"{base}/models/{name}/ready", f"{base}/metrics", key)


def client() -> httpx.Client:
    """One HTTP client for a whole check (making one costs ~0.2 s of CPU on a busy machine: its TLS context)."""
    return httpx.Client(timeout=PROBE_TIMEOUT_SECONDS)


def probe(http: httpx.Client, service: Service, ready: bool, latency: bool) -> Probe:
    """GET the service's /ready (when `ready`) and /metrics (when `latency`), each within PROBE_TIMEOUT_SECONDS."""
    answer, is_ready, buckets = "not probed", False, None
    if ready:
        is_ready, answer = _ready(http, service.ready_url)
    if latency:
        headers = {"X-API-Key": service.api_key} if service.api_key else {}
        buckets = _latency_buckets(http, service.metrics_url, service.model, headers)
    return Probe(is_ready, answer, buckets)


def _ready(client: httpx.Client, url: str) -> tuple[bool, str]:
    try:
        response = client.get(url)
    except httpx.TransportError as error:  # refused, reset, timed out, unknown host: the service is not there
        return False, f"no answer from {url}: {type(error).__name__}: {error or 'timed out'}"
    body = _json(response)
    if response.status_code == 200 and body.get("ready") is True:
        return True, f"ready, champion v{body.get('champion', '?')}"
    return (
        False,
        f"{response.status_code} from {url}: {body.get('reason') or body.get('detail') or response.text[:200]}",
    )


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _latency_buckets(client: httpx.Client, url: str, model: str, headers: dict) -> dict[str, float] | None:
    try:
        response = client.get(url, headers=headers)
    except httpx.TransportError:
        return None  # the /ready probe says why: latency is only measured on a service that answers
    if response.status_code != 200:
        return None
    return latency_buckets(response.text, model)


def latency_buckets(exposition: str, model: str) -> dict[str, float]:
    """The /predict latency histogram's cumulative counts by upper bound, summed over series (worker processes);
    series labelled with another model (a fleet service) are left out."""
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != LATENCY_HISTOGRAM:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket") or sample.labels.get(MODEL_LABEL, model) != model:
                continue
            bound = sample.labels["le"]
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def since(current: dict[str, float], previous: dict[str, float] | None) -> dict[str, float]:
    """The counts of the requests since the previous probe; all of them when the service restarted in between
    (a count went down) or there was no previous probe."""
    if not previous or any(current.get(bound, 0.0) < count for bound, count in previous.items()):
        return dict(current)
    return {bound: count - previous.get(bound, 0.0) for bound, count in current.items()}


def quantile(buckets: dict[str, float], share: float) -> float | None:
    """The latency (seconds) under which `share` of the requests were answered, interpolated within its bucket as
    Prometheus' histogram_quantile does; None without requests."""
    bounds = sorted((float(bound), count) for bound, count in buckets.items())
    total = bounds[-1][1] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = share * total, 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if math.isinf(upper):  # past the largest bucket: its bound is all a histogram can say
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower
