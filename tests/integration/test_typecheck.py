"""The type check beside the bundle, with the project's own TypeScript (tests/fixtures/projects/typescript)."""

from __future__ import annotations

import hashlib
import shutil

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import REPO
from tests.helpers import NAMESPACE, conf_for, failure_output, objects_in

FIXTURE = REPO / "tests" / "fixtures" / "projects" / "typescript"


def test_a_typed_worker_is_checked_and_a_type_error_stops_the_upload_with_the_compilers_message(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path, capfd) -> None:
    repo = git_server.publish("typed-worker", FIXTURE)
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)
    clean = run_pipeline(pipeline_dag, conf)
    assert clean.state == "success", clean.task_states
    assert clean.xcom("typecheck") == {"typescript": "checked"}

    repo.commit({"src/index.ts": 'const greeting: number = "not a number";\n'
                                 "export default { fetch: (): Response => new Response(String(greeting)) };\n"},
                "a type error")
    broken = run_pipeline(pipeline_dag, conf)
    assert broken.task_states["typecheck"] == "failed"
    assert broken.task_states["bundle"] == "success", "esbuild strips types: only the check sees the error"
    assert broken.task_states["upload"] == broken.task_states["publish"] == "upstream_failed"
    output = failure_output(capfd)
    assert "ERROR: TypeScript found 1 error(s): src/index.ts(1,7): error TS2322: Type 'string' is not assignable to " \
           "type 'number'." in output
    stored = objects_in(s3_client, bucket)["my-worker/build.js"]
    assert hashlib.sha256(stored).hexdigest() == clean.xcom("upload")["sha256"], "the clean build is still the object"
    assert connections.get(NAMESPACE, "my-worker-artifact-metadata")["metadata"]["annotations"][
        "cloudflare-worker-pipeline.planton.cloud/commit"] != repo.head(), "the broken commit was not published"

    off = run_pipeline(pipeline_dag, {**conf, "typescript-check": "off"})
    assert off.state == "success" and off.xcom("typecheck") == {"typescript": "off"}


def test_auto_checks_nothing_without_a_tsconfig_and_on_requires_one(pipeline_dag, git_server, connections, bucket,
                                                                     s3_server, tmp_path, capfd) -> None:
    project = tmp_path / "untyped"
    shutil.copytree(FIXTURE, project)
    (project / "tsconfig.json").unlink()
    repo = git_server.publish("untyped-worker", project)
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)
    auto = run_pipeline(pipeline_dag, conf)
    assert auto.state == "success" and auto.xcom("typecheck") == {"typescript": "no-tsconfig"}

    required = run_pipeline(pipeline_dag, {**conf, "typescript-check": "on", "force-rebuild": "true"})
    assert required.task_states["typecheck"] == "failed"
    assert "ERROR: typescript-check is on, but the project root has no tsconfig.json" in failure_output(capfd)
