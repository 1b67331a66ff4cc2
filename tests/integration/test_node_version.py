"""The Node a project asks for, against the worker's own in the local mode (Node 20 here)."""

from __future__ import annotations

from examples.local_stack.dag_run import run_pipeline
from tests.helpers import conf_for, failure_output, hello_worker_variant, objects_in


def test_a_project_asking_for_another_node_fails_at_checkout_and_one_asking_for_this_node_builds(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path, capfd) -> None:
    repo = git_server.publish("node-22", hello_worker_variant(tmp_path, "node-22", files={".nvmrc": "v22\n"}))
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)
    refused = run_pipeline(pipeline_dag, conf)
    assert refused.task_states["checkout"] == "failed" and refused.task_states["install"] == "upstream_failed"
    assert "ERROR: the project asks for Node 22 (.nvmrc), but this worker's node is v20." in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}

    repo.commit({".nvmrc": "lts/iron\n"}, "Node 20, as nvm names it")
    built = run_pipeline(pipeline_dag, conf)
    assert built.state == "success", built.task_states
    assert built.xcom("checkout")["node_version"] == {"version": "20", "source": ".nvmrc"}

    overridden = run_pipeline(pipeline_dag, {**conf, "node-version": "18"})
    assert overridden.task_states["checkout"] == "failed"
    assert "asks for Node 18 (parameter node-version)" in failure_output(capfd)
