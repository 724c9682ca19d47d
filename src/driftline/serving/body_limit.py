"""The request-body limit: a body over it is refused with 413 before anything reads it whole or parses it; the default
is the size of the largest valid request, so a valid request is never refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftline.config import DriftlineConfig

# JSON encoders write any float64 in at most 24 characters (-2.2250738585072014e-308); 32 leaves room for others.
NUMBER_BYTES = 32
# A character written as a JSON escape: \uXXXX, or a surrogate pair \uXXXX\uXXXX outside the Basic Multilingual Plane.
ESCAPED_CHAR_BYTES = 12
# Whitespace around each field and row, as an indenting encoder writes it (json.dumps(indent=2): newline, 6 spaces).
INDENT_BYTES = 8
ENVELOPE_BYTES = 64  # {"rows": [ ... ]} and the whitespace around it


def largest_row_bytes(row_model: type[BaseModel], max_text_chars: int) -> int:
    """The largest valid row of the request model as JSON: each field's name and its value at the largest size it may
    take (text of `max_text_chars` escaped characters, a number as encoders write one), with punctuation and indent."""
    size = 2 + INDENT_BYTES  # {} and the row's own line
    for name, field in row_model.model_fields.items():
        text = str in _kinds(field.annotation) or int in _kinds(field.annotation)
        value = 2 + ESCAPED_CHAR_BYTES * max_text_chars if text else NUMBER_BYTES
        size += len(json.dumps(name)) + len(": ") + value + len(", ") + INDENT_BYTES
    return size + len(", ")  # the comma between rows


def body_limit(cfg: DriftlineConfig, request_model: type[BaseModel]) -> int:
    """`serving.max_body_bytes`, else the size of the largest valid request of `request_model` (`{"rows": [...]}`):
    `serving.max_rows` of its largest row."""
    serving = cfg.serving
    if serving.max_body_bytes is not None:
        return serving.max_body_bytes
    [row_model] = get_args(request_model.model_fields["rows"].annotation)
    return ENVELOPE_BYTES + serving.max_rows * largest_row_bytes(row_model, serving.max_text_chars)


def _kinds(annotation: Any) -> set[type]:
    """The plain types an annotation accepts (`str | int | None` → {str, int, NoneType}), through `Annotated`."""
    arguments = get_args(annotation)
    if not arguments:
        return {annotation} if isinstance(annotation, type) else set()
    return set().union(*(_kinds(argument) for argument in arguments))


class BodyLimit:
    """ASGI middleware: a request whose body is over `limit` bytes gets 413 and the app never sees it. A declared
    Content-Length is checked up front (the server delivers no more than it declares); a streamed (chunked) body is
    counted as it arrives, held until complete, and refused as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, limit: int, refused: Callable[[], None] | None = None) -> None:
        self.app, self.limit, self.refused = app, limit, refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.limit:
                await self._refuse(send)
            else:
                await self.app(scope, receive, send)
            return
        held: list[Message] = []
        size = 0
        while True:
            message = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the app sees it as it would have
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(held)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Send) -> None:
        if self.refused is not None:
            self.refused()
        detail = (
            f"request body over the limit of {self.limit} bytes (serving.max_body_bytes; by default the size of "
            "serving.max_rows rows at their largest valid size): send fewer rows per request"
        )
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is never read: this connection cannot carry another
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app is called
    return None
