"""Outages are told from bugs by type and code (driftline.outages): each kind of outage is retried, and anything else
(a bug, a missing version, a bad request) is not, whatever its message says."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import requests
import sqlalchemy
import urllib3
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import RESOURCE_EXHAUSTED, TEMPORARILY_UNAVAILABLE
from mlflow.utils.rest_utils import MlflowHostCreds, http_request

from driftline.config import load_config
from driftline.errors import RegistryUnavailable, retry_can_help
from driftline.outages import outage_cause
from driftline.registry import Registry
from driftline.stack import free_port


class Answers503(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b"down for maintenance")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def answering_503() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers503)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BaseException as error:  # noqa: BLE001 - the error is what the test examines
        return error
    raise AssertionError("nothing was raised")


def mlflow_call(url: str) -> BaseException:
    """What MLflow raises once its HTTP retries (none here) are spent."""
    return raised(lambda: http_request(MlflowHostCreds(url), "/api/2.0/mlflow/experiments/get", "GET", max_retries=0))


def locked_sqlite(tmp_path: Path) -> sqlite3.OperationalError:
    """A write to a SQLite file another connection holds exclusively: 'database is locked' (SQLITE_BUSY)."""
    database = tmp_path / "held.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    error = raised(lambda: sqlite3.connect(database, timeout=0).execute("INSERT INTO t VALUES (1)"))
    holder.execute("ROLLBACK")
    return error


def locked_through_sqlalchemy(tmp_path: Path) -> BaseException:
    database = tmp_path / "held.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = sqlalchemy.create_engine(f"sqlite:///{database}", connect_args={"timeout": 0})
    with engine.connect() as connection:
        error = raised(lambda: connection.execute(sqlalchemy.text("INSERT INTO t VALUES (1)")))
    holder.execute("ROLLBACK")
    return error


def no_such_table(tmp_path: Path) -> BaseException:
    return raised(lambda: sqlite3.connect(tmp_path / "empty.db").execute("SELECT * FROM missing"))


def response(status: int) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    return answer


def httpx_status(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1:4200/api/flow_runs")
    return httpx.HTTPStatusError("answer", request=request, response=httpx.Response(status, request=request))


def wrapped(error: BaseException, code: int) -> MlflowException:
    """An MlflowException raised while handling `error`, as MLflow's stores raise theirs."""
    try:
        raise error
    except BaseException:  # noqa: BLE001
        try:
            raise MlflowException("store error", error_code=code)  # noqa: B904 - __context__, as MLflow does
        except MlflowException as outer:
            return outer


OUTAGES: dict[str, Callable[[Path, str], BaseException]] = {
    "ConnectionRefusedError": lambda tmp, url: ConnectionRefusedError(111, "Connection refused"),
    "TimeoutError (socket.timeout)": lambda tmp, url: TimeoutError("timed out"),
    "requests ConnectionError": lambda tmp, url: requests.exceptions.ConnectionError("reset"),
    "requests ReadTimeout": lambda tmp, url: requests.exceptions.ReadTimeout("read timed out"),
    "requests HTTPError 503": lambda tmp, url: requests.exceptions.HTTPError(response=response(503)),
    "requests HTTPError 429": lambda tmp, url: requests.exceptions.HTTPError(response=response(429)),
    "urllib3 ProtocolError": lambda tmp, url: urllib3.exceptions.ProtocolError("Connection aborted"),
    "httpx ConnectError (Prefect API down)": lambda tmp, url: httpx.ConnectError("All connection attempts failed"),
    "httpx ReadTimeout": lambda tmp, url: httpx.ReadTimeout("timed out"),
    "httpx HTTPStatusError 502": lambda tmp, url: httpx_status(502),
    "MlflowException TEMPORARILY_UNAVAILABLE": lambda tmp, url: MlflowException("x", TEMPORARILY_UNAVAILABLE),
    "MlflowException RESOURCE_EXHAUSTED": lambda tmp, url: MlflowException("x", RESOURCE_EXHAUSTED),
    "RestException INTERNAL_ERROR (the server's 500)": lambda tmp, url: RestException(
        {"error_code": "INTERNAL_ERROR", "message": "server error"}
    ),
    "MlflowException after a refused connection": lambda tmp, url: mlflow_call(f"http://127.0.0.1:{free_port()}"),
    "MlflowException after answers of 503": lambda tmp, url: mlflow_call(url),
    "sqlite3 database is locked": lambda tmp, url: locked_sqlite(tmp),
    "SQLAlchemy OperationalError, database is locked": lambda tmp, url: locked_through_sqlalchemy(tmp),
    "MlflowException from a locked database": lambda tmp, url: wrapped(locked_sqlite(tmp), TEMPORARILY_UNAVAILABLE),
}
BUGS_AND_ANSWERS: dict[str, Callable[[Path, str], BaseException]] = {
    "KeyError": lambda tmp, url: KeyError("connection refused"),  # the message says nothing
    "ValueError": lambda tmp, url: ValueError("Max retries exceeded, HTTP 503"),
    "AttributeError": lambda tmp, url: AttributeError("'NoneType' object has no attribute 'version'"),
    "FileNotFoundError": lambda tmp, url: FileNotFoundError(2, "No such file or directory"),
    "MlflowException RESOURCE_DOES_NOT_EXIST": lambda tmp, url: raised(
        lambda: MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}").get_registered_model("nobody")
    ),
    "MlflowException with MLflow's default code": lambda tmp, url: MlflowException("Connection refused"),
    "requests HTTPError 404": lambda tmp, url: requests.exceptions.HTTPError(response=response(404)),
    "requests SSLError": lambda tmp, url: requests.exceptions.SSLError("certificate verify failed"),
    "httpx HTTPStatusError 400": lambda tmp, url: httpx_status(400),
    "sqlite3 no such table": lambda tmp, url: no_such_table(tmp),
    "MlflowException TEMPORARILY_UNAVAILABLE from a missing table": lambda tmp, url: wrapped(
        no_such_table(tmp), TEMPORARILY_UNAVAILABLE
    ),
}


@pytest.mark.parametrize("case", OUTAGES)
def test_each_kind_of_outage_is_retried(case, tmp_path, answering_503):
    error = OUTAGES[case](tmp_path, answering_503)
    assert retry_can_help(error), f"{case}: {type(error).__name__}: {error}"


@pytest.mark.parametrize("case", BUGS_AND_ANSWERS)
def test_bugs_and_answers_are_not_retried_whatever_their_message(case, tmp_path, answering_503):
    error = BUGS_AND_ANSWERS[case](tmp_path, answering_503)
    assert not retry_can_help(error), f"{case}: {type(error).__name__}: {error}"


def test_the_cause_of_an_outage_is_read_from_attributes(tmp_path, answering_503):
    causes = {
        "refused": outage_cause(mlflow_call(f"http://127.0.0.1:{free_port()}")),
        "503": outage_cause(mlflow_call(answering_503)),
        "locked": outage_cause(wrapped(locked_sqlite(tmp_path), TEMPORARILY_UNAVAILABLE)),
        "httpx 502": outage_cause(httpx_status(502)),
        "timeout": outage_cause(requests.exceptions.ReadTimeout("read timed out")),
    }
    assert causes == {
        "refused": "Connection refused",
        "503": "HTTP 503",
        "locked": "database is locked",
        "httpx 502": "HTTP 502",
        "timeout": "timed out",
    }


def test_a_registry_whose_server_refuses_fails_in_one_transient_line(config_factory, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the process-wide setting, restored after
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    url = f"http://127.0.0.1:{free_port()}"
    registry = Registry(load_config(config_factory(registry={"model_name": "churn-demo", "tracking_uri": url})))
    with pytest.raises(RegistryUnavailable) as refused:
        registry.champion()
    assert str(refused.value) == (
        f"MLflow tracking server {url} unavailable (/api/2.0/mlflow/registered-models/alias): Connection refused "
        "after 0 retries; check the server, or raise reliability.registry_http_retries"
    )
    assert retry_can_help(refused.value)
