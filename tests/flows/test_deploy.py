"""`driftline deploy`'s work pools, created on a real Prefect server: the type asked for, driftline's job template."""

from __future__ import annotations

from typing import get_args

import pytest
from prefect.client.orchestration import get_client
from testkit.paths import PROJECT_ROOT

from driftline.cli.main import build_parser
from driftline.errors import DriftlineError
from driftline.flows.deploy import JOB_TEMPLATES, PoolType, WorkPoolSpec, ensure_work_pool


def read_pool(name: str):
    with get_client(sync_client=True) as client:
        return client.read_work_pool(name)


def test_a_new_kubernetes_pool_runs_driftlines_job_with_the_image_given_and_is_kept_when_deployed_again():
    pool = WorkPoolSpec(name="driftline-k8s-test", type="kubernetes", image="registry.example/driftline:1.2.3")
    assert ensure_work_pool(pool, PROJECT_ROOT) is True
    created = read_pool(pool.name)
    assert created.type == "kubernetes"
    variables = created.base_job_template["variables"]["properties"]
    assert variables["image"]["default"] == "registry.example/driftline:1.2.3"
    assert variables["workspace_claim"]["default"] == "driftline-workspace"
    assert ensure_work_pool(WorkPoolSpec(name=pool.name, type="kubernetes", image="other:9"), PROJECT_ROOT) is False
    assert read_pool(pool.name).base_job_template["variables"]["properties"]["image"]["default"].endswith(":1.2.3")


def test_a_pool_of_another_type_is_refused_with_the_way_out():
    ensure_work_pool(WorkPoolSpec(name="driftline-docker-test", type="docker"), PROJECT_ROOT)
    with pytest.raises(DriftlineError, match="is a docker pool, not process: deploy with --pool-type docker"):
        ensure_work_pool(WorkPoolSpec(name="driftline-docker-test", type="process"), PROJECT_ROOT)


def test_a_process_pool_gets_prefects_template_and_no_image():
    ensure_work_pool(WorkPoolSpec(name="driftline-process-test"), PROJECT_ROOT)
    created = read_pool("driftline-process-test")
    assert created.type == "process"
    assert "working_dir" in created.base_job_template["variables"]["properties"]
    with pytest.raises(DriftlineError, match="a process work pool runs no image"):
        ensure_work_pool(WorkPoolSpec(name="driftline-process-2", image="driftline:1"), PROJECT_ROOT)


def test_every_pool_type_can_be_asked_for_on_the_command_line_and_container_pools_have_a_template():
    for pool_type in get_args(PoolType):
        args = build_parser().parse_args(["deploy", "--config", "c.yaml", "--pool-type", pool_type])
        assert args.pool_type == pool_type
    assert set(JOB_TEMPLATES) == set(get_args(PoolType)) - {"process"}
