"""The one list of failures an outage causes, recognised by type and code (never by message text): these are retried.

Retried: connection errors and timeouts (Python's, requests', urllib3's, httpx's), HTTP 408/429/5xx answers (501 and
505 aside), MLflow's error codes for a server that cannot answer now, an `MlflowException` raised from one of these, and
SQLite's "database is locked" (`SQLITE_BUSY`/`SQLITE_LOCKED`, also wrapped by SQLAlchemy). Anything else is a bug or an
answer: it fails at once with its traceback. A library's exception types are looked up only if that library is loaded
(an exception of a library nobody imported cannot occur), so this module imports none of them.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from collections.abc import Iterator

# HTTP answers a retry may change: a timeout, too many requests, a server error (not "not implemented"/"unsupported").
NEVER_RETRIED_5XX = frozenset({501, 505})
# MLflow error codes (mlflow.protos.databricks_pb2) of a server that cannot answer now; INTERNAL_ERROR only when
# the server itself said so (a RestException): MLflow gives the code to every exception it raises without one.
UNAVAILABLE_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED", "ABORTED"}
)
SERVER_ERROR_CODES = UNAVAILABLE_CODES | {"INTERNAL_ERROR"}
# SQLite's primary result codes of a database another connection holds, and their standard texts (sqlite3_errstr).
LOCKED_SQLITE = {sqlite3.SQLITE_BUSY: "database is locked", sqlite3.SQLITE_LOCKED: "database table is locked"}


def _loaded(module: str, *names: str) -> tuple[type, ...]:
    """The named types of `module` if it is loaded, else none."""
    found = sys.modules.get(module)
    return tuple(getattr(found, name) for name in names if hasattr(found, name)) if found else ()


def is_outage(error: BaseException) -> bool:
    """Whether `error` is an outage (retrying may succeed), judged by its type, its code and the errors it wraps."""
    return _verdict(error, set()) is True


def _verdict(error: BaseException | None, seen: set[int]) -> bool | None:
    """True: an outage; False: a known failure no retry changes; None: not a type this module knows."""
    if error is None or id(error) in seen:
        return None
    seen.add(id(error))
    if isinstance(error, sqlite3.Error):
        return _sqlite_code(error) in LOCKED_SQLITE
    if isinstance(error, _loaded("sqlalchemy.exc", "DBAPIError")):
        inner = _verdict(error.orig, seen)
        return inner if inner is not None else (error.connection_invalidated or None)
    if isinstance(error, _loaded("mlflow.exceptions", "MlflowException")):
        for inner in (error.__cause__, error.__context__):  # MLflow raises its own type from the transport's
            verdict = _verdict(inner, seen)
            if verdict is not None:
                return verdict
        server_said = isinstance(error, _loaded("mlflow.exceptions", "RestException"))
        return error.error_code in (SERVER_ERROR_CODES if server_said else UNAVAILABLE_CODES)
    if isinstance(error, _loaded("requests.exceptions", "SSLError", "InvalidURL")):
        return False  # a certificate or an address no retry changes
    if isinstance(error, _loaded("requests.exceptions", "HTTPError")):
        return _status_retried(error.response)
    # RetryError: urllib3 gave up after retryable answers (MLflow's retries are of 408, 429 and 5xx answers)
    if isinstance(
        error, _loaded("requests.exceptions", "ConnectionError", "Timeout", "ChunkedEncodingError", "RetryError")
    ):
        return True
    if isinstance(error, _loaded("urllib3.exceptions", "SSLError", "LocationParseError")):
        return False
    if isinstance(error, _loaded("urllib3.exceptions", "MaxRetryError", "ProtocolError", "TimeoutError")):
        return True  # NewConnectionError is a urllib3 TimeoutError
    if isinstance(error, _loaded("httpx", "HTTPStatusError")):  # prefect's PrefectHTTPStatusError too
        return _status_retried(error.response)
    if isinstance(error, _loaded("httpx", "UnsupportedProtocol")):
        return False
    if isinstance(error, _loaded("httpx", "TransportError")):
        return True
    if isinstance(error, ConnectionError | TimeoutError):  # socket.timeout is TimeoutError
        return True
    return None


def retried_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status < 600 and status not in NEVER_RETRIED_5XX)


def _status_retried(response) -> bool:
    return response is not None and retried_status(response.status_code)


def _sqlite_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # an extended code (SQLITE_BUSY_TIMEOUT) keeps its primary code


def linked(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error it wraps: causes, contexts, and what requests, urllib3 and SQLAlchemy keep inside."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inside = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            getattr(current, "orig", None),
        ]
        inside += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        pending += [inner for inner in inside if isinstance(inner, BaseException)]


def outage_cause(error: BaseException) -> str:
    """What went wrong, from the errors' attributes: `HTTP 503`, `Connection refused`, `timed out`, `database is
    locked`, or MLflow's error code."""
    chain = list(linked(error))
    for link in chain:
        status = _status_of(link)
        if status is not None:
            return f"HTTP {status}"
    for link in chain:
        if isinstance(link, sqlite3.Error) and _sqlite_code(link) in LOCKED_SQLITE:
            return LOCKED_SQLITE[_sqlite_code(link)]
    for link in chain:
        if isinstance(link, OSError) and link.errno:
            return link.strerror or os.strerror(link.errno)
    refused = _loaded("urllib3.exceptions", "NewConnectionError")  # a urllib3 TimeoutError, though nothing timed out
    timeouts = (TimeoutError, *_loaded("requests.exceptions", "Timeout"), *_loaded("httpx", "TimeoutException"))
    timeouts += _loaded("urllib3.exceptions", "TimeoutError")
    if any(isinstance(link, timeouts) and not isinstance(link, refused) for link in chain):
        return "timed out"
    codes = [getattr(link, "error_code", None) for link in chain]
    return next((code for code in codes if isinstance(code, str)), type(chain[-1]).__name__)


def _status_of(error: BaseException) -> int | None:
    """The HTTP status of an answer: on the response, or (urllib3 gave up after retryable answers) in the history its
    `Retry` keeps of each attempt."""
    response = getattr(error, "response", None)
    if response is not None and isinstance(getattr(response, "status_code", None), int):
        return response.status_code
    retry_types = _loaded("urllib3.util.retry", "Retry")
    if not retry_types or not isinstance(error, _loaded("urllib3.exceptions", "MaxRetryError")):
        return None
    statuses = [  # from the outermost frame to the one that gave up: the last is the last answer
        value.history[-1].status
        for frame, _ in traceback.walk_tb(error.__traceback__)
        for value in frame.f_locals.values()
        if isinstance(value, retry_types) and value.history and value.history[-1].status
    ]
    return statuses[-1] if statuses else None


def outage_url(error: BaseException) -> str | None:
    """The URL that was called, from the request the transport library kept on its error."""
    for link in linked(error):
        try:
            request = getattr(link, "request", None)  # httpx raises RuntimeError when the error has none
        except RuntimeError:
            request = None
        url = getattr(request, "url", None)
        if url:
            return str(url)
    return None
