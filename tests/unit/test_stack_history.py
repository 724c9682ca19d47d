"""One Prefect history per workspace: the database the CLI's runs write is the one the stack's SQLite profile serves,
and a command finds the stack's Prefect server when it is up (and accepts the command's credentials)."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from driftline import stack
from driftline.cli.main import build_parser
from driftline.cli.operations import _stack_settings
from driftline.stack.processes import Started

AUTH = "admin:s3cret"


@pytest.fixture
def prefect_like_server():
    """Answers GET /api/admin/version as a Prefect server with basic auth does: 200 with the credentials, else 401."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            expected = "Basic " + base64.b64encode(AUTH.encode()).decode()
            allowed = self.path == "/api/admin/version" and self.headers.get("Authorization") == expected
            self.send_response(200 if allowed else 401)
            self.end_headers()
            self.wfile.write(b'"3.8"' if allowed else b"{}")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_stack_s_sqlite_profile_serves_the_database_the_cli_writes(cfg, config_path, monkeypatch):
    for name in stack.PREFECT_DB_ENVS:
        monkeypatch.delenv(name, raising=False)
    settings = _stack_settings(build_parser().parse_args(["stack", "up", "--config", str(config_path)]))
    cli_database = stack.prefect_database_url(cfg.folders.root, {})
    assert cli_database == f"sqlite+aiosqlite:///{cfg.folders.root}/prefect/prefect.db"
    prefect_db, _ = stack.database_urls(settings, {}, stack.StackState(root=str(settings.root)))
    assert prefect_db == settings.prefect_store == cli_database
    assert stack.sqlite_folder(prefect_db) == cfg.folders.root / "prefect"
    assert stack.sqlite_folder("postgresql+asyncpg://prefect:pw@db/prefect") is None


@pytest.mark.parametrize("name", stack.PREFECT_DB_ENVS)
def test_a_database_the_environment_names_is_the_cli_s_and_the_stack_s(cfg, name):
    named = stack.prefect_database_url(cfg.folders.root, {name: "sqlite+aiosqlite:////srv/prefect/runs.db"})
    assert named == "sqlite+aiosqlite:////srv/prefect/runs.db"
    settings = stack.StackSettings(
        root=cfg.folders.stack, project_dir=cfg.folders.root, config="c", prefect_store=named
    )
    assert stack.database_urls(settings, {}, stack.StackState(root=str(settings.root)))[0] == named


def test_a_command_reports_to_the_stack_s_prefect_server_only_when_it_answers_this_client(
    tmp_path, prefect_like_server
):
    assert stack.running_prefect_api(tmp_path) is None  # no stack recorded
    state = stack.StackState(root=str(tmp_path), env={"PREFECT_API_URL": f"{prefect_like_server}/api"})
    state.processes.append(Started("prefect-server", pid=1, log="prefect-server.log", url=prefect_like_server))
    state.save()
    assert stack.running_prefect_api(tmp_path, AUTH) == f"{prefect_like_server}/api"
    assert stack.running_prefect_api(tmp_path) is None  # refused without credentials: a temporary server instead
    assert stack.running_prefect_api(tmp_path, "admin:wrong") is None

    state.env = {"PREFECT_API_URL": f"http://127.0.0.1:{stack.free_port()}/api"}  # recorded, but no longer running
    state.save()
    assert stack.running_prefect_api(tmp_path, AUTH) is None
