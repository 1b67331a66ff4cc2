"""Parameters whose values reach tools carry shell payloads that would create a marker file if a
shell evaluated them, in both execution modes: the runs succeed, the tools get the payloads as
plain text, and no marker ever appears.

The payloads ride on what the schema accepts by design: ``wrangler-extra-args`` values
(``--define``, ``--var``) and ``build-command`` arguments. Local mode runs with ``sandbox = none``:
a sandbox's private ``/tmp`` would hide the marker even if a shell ran; the emulator's pods are
host processes. Values the schema refuses are shown refused, naming their parameter.
"""

from __future__ import annotations

import json
import os

import pytest
from cloudflare_worker_pipeline.parameters import PARAMETER_NAMES

from examples.local_stack.dag_run import run_pipeline
from tests.helpers import conf_for, failure_output, hello_worker_variant, objects_in

MARKER = "/tmp/cfw-injection-marker"
PAYLOADS = [f"$(touch {MARKER})", f"`touch {MARKER}`", f";touch {MARKER}", f"|touch {MARKER}", f"&&touch {MARKER}",
            f"'$(touch {MARKER})'", f"\"`touch {MARKER}`\""]
PAYLOAD = "".join(PAYLOADS)
INDEX = "declare const INJECTED: string;\nexport default { fetch: () => new Response(INJECTED) };\n"


@pytest.fixture(params=["local", "kubernetes"])
def mode(request, monkeypatch, connections, kube_api):
    if request.param == "kubernetes":
        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__EXECUTION_MODE", "kubernetes")
        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT", str(kube_api.claims_root))
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    else:
        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__SANDBOX", "none")
    if os.path.exists(MARKER):
        os.remove(MARKER)
    return request.param


def test_payloads_reach_wrangler_and_the_build_command_as_text_never_a_shell(mode, pipeline_dag, git_server, bucket,
                                                                              s3_server, s3_client, tmp_path,
                                                                              capfd) -> None:
    repo = git_server.publish(f"injection-{mode}", hello_worker_variant(tmp_path, "injected", files={"src/index.ts": INDEX}))
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url,
                    wrangler_extra_args=json.dumps(["--define", f"INJECTED:{json.dumps(PAYLOAD)}", "--var", f"V:{PAYLOAD}"]),
                    build_command=json.dumps(["echo", "build-command got:", *PAYLOADS]))

    run = run_pipeline(pipeline_dag, conf)

    assert not os.path.exists(MARKER), "a payload reached a shell"
    assert run.state == "success", run.task_states
    assert f"build-command got: {' '.join(PAYLOADS)}" in failure_output(capfd), "echo printed its arguments as given"
    assert json.dumps(PAYLOAD) in objects_in(s3_client, bucket)["my-worker/build.js"].decode(), "--define's value, as text"


@pytest.mark.parametrize("name", PARAMETER_NAMES)
def test_a_payload_the_schema_or_validation_refuses_is_refused_naming_its_parameter(name, pipeline_dag, connections,
                                                                                   bucket, capfd) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    value = "w/" + PAYLOAD + ".js" if name == "r2-object-key" else "a" + PAYLOADS[PARAMETER_NAMES.index(name) % 7]
    if name in ("wrangler-extra-args", "build-command"):
        value = json.dumps([value])  # a JSON array whose element is the payload: refused as an option or a program
    try:
        run = run_pipeline(pipeline_dag, {**conf_for("https://github.com/org/repo.git", bucket,
                                                     "https://acct.r2.cloudflarestorage.com"), name: value})
    except ParamValidationError as error:  # the REST API answers 400 for the same schema
        assert name in str(error)
        return
    finally:
        assert not os.path.exists(MARKER), f"{name}={value!r} reached a shell"
    assert run.task_states["setup"] == "failed", (name, value, run.task_states)
    assert f"Invalid parameter '{name}'" in failure_output(capfd)
