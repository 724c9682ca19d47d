"""One stack for a folder of configs: its settings come from the fleet's shared workspace and serving port; the
fleet demo: three models of three tasks in one workspace, each with generated data that has real signal; and the
fleet past one machine: its Kubernetes manifests as the API and Prefect read them."""

from __future__ import annotations

import json
import re
import shutil

import kubernetes_validate
import pandas as pd
import pytest
import yaml
from prefect.server.schemas.actions import validate_base_job_template
from prefect.utilities.templating import apply_values
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import f1_score, root_mean_squared_error
from testkit.paths import PROJECT_ROOT

from driftline.cli.main import build_parser
from driftline.cli.operations import _stack_settings
from driftline.config import load_fleet
from driftline.data.demo import make_demand_frame, make_frame, make_plan_frame, write_demo_data, write_task_data

FLEET_DEMO = PROJECT_ROOT / "configs" / "fleet-demo"


def settings_of(config: str):
    return _stack_settings(build_parser().parse_args(["stack", "up", "--config", config, "--prefect-port", "4310"]))


def test_a_folder_of_configs_runs_on_its_shared_workspace_s_stack_with_the_fleet_service_on_its_port():
    fleet = load_fleet(FLEET_DEMO)
    settings = settings_of(str(FLEET_DEMO))
    assert settings.root == fleet.workspace.folders.stack == PROJECT_ROOT / ".driftline-fleet" / "stack"
    assert settings.config == str(FLEET_DEMO)  # deployed, watched and served as one folder
    assert settings.service_port == 8090  # fleet.yaml's serving.port
    assert settings.prefect_port == 4310
    assert settings.prefect_store == f"sqlite+aiosqlite:///{PROJECT_ROOT}/.driftline-fleet/prefect/prefect.db"


def test_a_single_config_runs_as_before_without_a_fleet_service(config_path, cfg):
    settings = settings_of(str(config_path))
    assert (settings.root, settings.config, settings.service_port) == (cfg.folders.stack, str(config_path), None)


def test_the_fleet_demo_is_three_models_of_three_tasks_whose_generated_data_has_the_columns_they_name(tmp_path):
    fleet = load_fleet(FLEET_DEMO)
    assert fleet.broken == ()
    tasks = {cfg.registry.model_name: cfg.dataset.task.value for cfg in fleet.configs}
    assert tasks == {"fleet-churn": "binary", "fleet-demand": "regression", "fleet-plans": "multiclass"}
    for cfg in fleet.configs:
        files = write_task_data(tmp_path / cfg.registry.model_name, cfg.dataset.task.value)
        named = {*cfg.dataset.features, cfg.dataset.target, cfg.dataset.id_column, cfg.dataset.event_time_column}
        for path in [files.reference, *files.batches]:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            assert set(frame.columns) == named, path.name


def test_the_churn_demo_is_the_same_data_as_before():
    frame = make_frame(400, seed=7)
    assert (
        pd.util.hash_pandas_object(frame, index=False).sum() == 3221663523222730183
    )  # make_frame before the fleet demo (commit 4d2d22f)
    assert list(frame.columns)[:3] == ["customer_id", "event_time", "tenure_months"]


def test_binary_task_data_is_the_churn_demo(tmp_path):
    task, demo = write_task_data(tmp_path / "task", "binary"), write_demo_data(tmp_path / "demo")
    assert pd.read_parquet(task.reference).equals(pd.read_parquet(demo.reference))
    assert [path.read_bytes() for path in task.batches] == [path.read_bytes() for path in demo.batches]


def _features(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    features = frame.drop(columns=[target, frame.columns[0], "event_time"])
    return features.astype({name: "category" for name in features.columns if features[name].dtype == object})


@pytest.mark.parametrize(
    ("make", "target", "model", "score"),
    [
        (make_plan_frame, "plan", HistGradientBoostingClassifier, lambda y, p: f1_score(y, p, average="macro")),
        (make_demand_frame, "units_sold", HistGradientBoostingRegressor, lambda y, p: -root_mean_squared_error(y, p)),
    ],
    ids=["multiclass plans", "regression demand"],
)
def test_the_multiclass_and_regression_demos_have_signal_that_concept_drift_breaks(make, target, model, score):
    train, stable, drifted = make(4000, seed=7, days=56), make(1500, seed=8), make(1500, seed=9, concept_drift=True)
    fitted = model(categorical_features="from_dtype", max_iter=60, random_state=0).fit(
        _features(train, target), train[target]
    )
    on_stable = score(stable[target], fitted.predict(_features(stable, target)))
    on_drifted = score(drifted[target], fitted.predict(_features(drifted, target)))
    if target == "plan":  # three classes, none rare; guessing the commonest scores about 0.2
        assert stable[target].value_counts(normalize=True).min() > 0.2
        assert on_stable > 0.7 and on_drifted < on_stable - 0.2
    else:  # the error is under a third of the target's spread, and concept drift at least doubles it
        assert -on_stable < stable[target].std() / 3 and -on_drifted > -2 * on_stable


# --- past one machine: the fleet's Kubernetes manifests (infra/k8s/fleet) -------------------------------------------
K8S_FLEET = PROJECT_ROOT / "infra" / "k8s" / "fleet"
KUBERNETES_VERSION = "1.33.0"


def fleet_resources() -> list[dict]:
    return [resource for path in sorted(K8S_FLEET.glob("*.yaml")) for resource in yaml.safe_load_all(path.read_text())]


def test_the_fleet_manifests_match_the_kubernetes_api_and_read_only_secrets_the_templates_declare():
    base_secrets = {
        resource["metadata"]["name"]: set(resource["stringData"])
        for path in (PROJECT_ROOT / "infra" / "kubernetes" / "secret").glob("*.yaml")
        for resource in yaml.safe_load_all(path.read_text())
    }
    for resource in fleet_resources():
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        assert resource["metadata"]["namespace"] == "driftline"
    text = "".join(path.read_text() for path in K8S_FLEET.glob("*.yaml"))
    for name, key in re.findall(r"secretKeyRef: \{name: ([\w-]+), key: (\w+)", text):
        assert key in base_secrets[name], f"reads {key}, which the template of {name} lacks"
    kinds = {(resource["kind"], resource["metadata"]["name"]) for resource in fleet_resources()}
    assert {
        ("Deployment", "driftline-watcher"),
        ("Deployment", "driftline-fleet-service"),
        ("Job", "driftline-deploy"),
    } <= kinds


def test_each_fleet_flow_run_is_a_job_prefect_accepts_with_the_fleet_s_configs_and_a_timeout():
    [pool] = [r for r in fleet_resources() if r["metadata"]["name"] == "driftline-fleet-pool"]
    template = json.loads(pool["data"]["work-pool.json"])
    validate_base_job_template(template)
    values = {key: spec["default"] for key, spec in template["variables"]["properties"].items() if "default" in spec}
    values |= {"name": "driftline-run", "command": ["prefect", "flow-run", "execute"], "env": [], "labels": {}}
    job = apply_values(template["job_configuration"]["job_manifest"], values)
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 21600
    assert {volume["name"]: volume for volume in pod["volumes"]}["fleet-configs"]["configMap"]["name"] == (
        "driftline-fleet-configs"
    )
    mounts = {mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]}
    settings = next(r for r in fleet_resources() if r["metadata"]["name"] == "driftline-env")["data"]
    assert settings["DRIFTLINE_CONFIG"] in mounts and settings["DRIFTLINE_WORK_POOL"] == "driftline-fleet"


def test_the_kubernetes_fleet_yaml_loads_under_a_model_config_and_points_the_probes_at_the_service(tmp_path):
    shutil.copy(K8S_FLEET / "fleet-config" / "fleet.yaml", tmp_path)
    shutil.copy(FLEET_DEMO / "churn.yaml", tmp_path)
    shared = load_fleet(tmp_path).workspace
    service = next(r for r in fleet_resources() if r["kind"] == "Service" and r["metadata"]["name"].endswith("service"))
    assert shared.sla.service_url == f"http://{service['metadata']['name']}.driftline.svc.cluster.local:8080"
    assert shared.serving.port == service["spec"]["ports"][0]["port"] == 8080
