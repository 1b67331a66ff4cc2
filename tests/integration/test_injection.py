"""Every string parameter carrying a payload that would create a marker file if a shell evaluated
it, in both execution modes: no marker ever appears, and every such value is refused naming its
parameter (object keys included: they are limited to S3's safe characters)."""

from __future__ import annotations

import os

import pytest
from cloudflare_worker_pipeline.parameters import PARAMETER_NAMES

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import REPO
from tests.helpers import conf_for, objects_in

MARKER = "/tmp/cfw-injection-marker"
PAYLOADS = [f"$(touch {MARKER})", f"`touch {MARKER}`", f";touch {MARKER}", f"|touch {MARKER}", f"&&touch {MARKER}",
            f"'$(touch {MARKER})'", f"\"`touch {MARKER}`\""]


@pytest.fixture(params=["local", "kubernetes"])
def mode(request, monkeypatch, connections, kube_api):
    if request.param == "kubernetes":
        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__EXECUTION_MODE", "kubernetes")
        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT", str(kube_api.claims_root))
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    if os.path.exists(MARKER):
        os.remove(MARKER)
    return request.param


def test_no_parameter_is_ever_evaluated_by_a_shell(mode, pipeline_dag, git_server, bucket, s3_server, s3_client,
                                                   capfd) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    repo = git_server.publish(f"injection-{mode}", REPO / "examples" / "hello-worker")
    base = conf_for(repo.url, bucket, s3_server.endpoint_url)
    for index, name in enumerate(PARAMETER_NAMES):
        payload = PAYLOADS[index % len(PAYLOADS)]
        value = f"w/{''.join(PAYLOADS[:3])}.js" if name == "r2-object-key" else f"a{payload}"
        try:
            run = run_pipeline(pipeline_dag, {**base, name: value})
        except ParamValidationError:  # refused by the DAG's schema before any task ran
            continue
        finally:
            assert not os.path.exists(MARKER), f"{name}={value!r} reached a shell"
        assert run.task_states["validate_parameters"] == "failed", (name, value)
        captured = capfd.readouterr()
        assert f"Invalid parameter '{name}'" in captured.out + captured.err
    assert objects_in(s3_client, bucket) == {}
