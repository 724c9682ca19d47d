"""The request-body limit of the online service: derived from the largest valid request unless set, and enforced
before the app reads the body (Content-Length up front, a streamed body counted as it arrives)."""

import asyncio
import json

from driftline.config import DriftlineConfig
from driftline.serving.app import request_model
from driftline.serving.body_limit import BodyLimit, body_limit


def with_serving(cfg: DriftlineConfig, **serving) -> DriftlineConfig:
    return cfg.model_copy(update={"serving": cfg.serving.model_copy(update=serving)})


def test_the_default_limit_is_max_rows_of_the_largest_row_and_max_body_bytes_overrides_it(cfg):
    limit = body_limit(cfg, request_model(cfg))
    assert limit == 34_150_064  # the figure docs/serving.md gives for the demo config
    assert body_limit(with_serving(cfg, max_rows=20_000), request_model(cfg)) == 2 * limit - 64
    longer = with_serving(cfg, max_text_chars=128)
    assert body_limit(longer, request_model(longer)) > limit
    assert body_limit(with_serving(cfg, max_body_bytes=1000), request_model(cfg)) == 1000


def call(limit: int, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[dict], int, bytes | None]:
    """The middleware in front of an app that reads the whole body: what it sent, how many body messages it pulled
    from the client, and the body the app received (None: the app was never called)."""
    pulled, sent, seen = 0, [], []

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    asyncio.run(BodyLimit(app, limit)(scope, receive, send))
    return sent, pulled, seen[0] if seen else None


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read():
    sent, pulled, seen = call(100, [(b"content-length", b"101")], [b"x" * 101])
    assert (sent[0]["status"], pulled, seen) == (413, 0, None)
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["detail"].startswith("request body over the limit of 100 bytes (serving.max_")


def test_a_streamed_body_is_refused_at_the_chunk_that_passes_the_limit_and_the_rest_is_never_read():
    sent, pulled, seen = call(100, [], [b"x" * 40] * 10)
    assert (sent[0]["status"], pulled, seen) == (413, 3, None)


def test_bodies_within_the_limit_reach_the_app_whole():
    assert call(100, [], [b"a" * 40, b"b" * 40, b"c" * 20])[2] == b"a" * 40 + b"b" * 40 + b"c" * 20
    assert call(100, [(b"content-length", b"100")], [b"d" * 100])[2] == b"d" * 100
