"""The "already built" skip sees every input the bundle read (issue 21).

The fingerprint hashes the git trees of the project root and the install directory. A worker that
imports ``../shared/greeting.ts``, outside both, once had its old bundle reused and published after
a commit that changed only the shared file. The bundle stage now reads esbuild's metafile: a build
that read a tracked file outside the fingerprinted trees is stored as one no later run may skip to.
"""

from __future__ import annotations

import shutil

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import REPO
from tests.helpers import conf_for, failure_output, objects_in

INDEX = ('import { greeting } from "../../shared/greeting";\n'
         'export default { fetch: () => new Response(greeting) };\n')


def test_a_change_only_to_a_shared_file_outside_the_project_root_rebuilds(pipeline_dag, git_server, connections,
                                                                           bucket, s3_server, s3_client, tmp_path,
                                                                           capfd) -> None:
    source = tmp_path / "monorepo"
    shutil.copytree(REPO / "examples" / "hello-worker", source / "worker", ignore=shutil.ignore_patterns("node_modules"))
    (source / "worker" / "src" / "index.ts").write_text(INDEX)
    (source / "shared").mkdir()
    (source / "shared" / "greeting.ts").write_text('export const greeting = "first greeting";\n')
    repo = git_server.publish("shared-input", source)
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url, project_root="worker")  # a fixed key: my-worker/build.js
    assert run_pipeline(pipeline_dag, conf).state == "success"
    assert b"first greeting" in objects_in(s3_client, bucket)["my-worker/build.js"]
    failure_output(capfd)  # the first run's output, set aside
    repo.commit({"shared/greeting.ts": 'export const greeting = "second greeting";\n'}, "only the shared file")

    run = run_pipeline(pipeline_dag, conf)

    assert run.state == "success", run.task_states
    assert run.task_states["upload"] == "success", "the stored build was reused although its input changed"
    assert b"second greeting" in objects_in(s3_client, bucket)["my-worker/build.js"]
    output = failure_output(capfd)
    assert "read files outside the fingerprinted directories (shared/greeting.ts)" in output, output[-3000:]
