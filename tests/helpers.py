"""What the integration and system tests share: the conf they send, and how they read what a run
left behind (objects, ConfigMaps, logs, processes)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from examples.local_stack.dag_run import PipelineRun
from tests.conftest import FIXTURES, REPO

NAMESPACE = "planton-cloud-pipelines"
SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"  # prefix of the settings as environment variables
OWNER = ("planton.cloud/service-id", "svc-abc123")


def makefile_variable(name: str) -> str:
    """A ``NAME := value`` of the Makefile, which pins the tools the tests and a newcomer use."""
    found = re.search(rf"^{name} := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert found, f"Makefile sets no {name}"
    return found.group(1)


def bootstrapped_uv(root: Path = REPO) -> Path:
    """The uv `make setup` bootstraps into ``<root>/.tools/`` (never one found on PATH)."""
    return root / ".tools" / f"uv-{makefile_variable('UV_VERSION')}" / "bin" / "uv"


def conf_for(url: str, bucket: str, endpoint: str, **overrides: str) -> dict[str, str]:
    conf = {
        "git-url": url,
        "r2-bucket-name": bucket,
        "r2-endpoint-url": endpoint,
        "r2-object-key": "my-worker/build.js",
        "worker-script-artifact-config-map-name": "my-worker-artifact-metadata",
        "kustomize-manifests-config-map-name": "my-worker-manifests",
        "owner-identifier-label-key": OWNER[0],
        "owner-identifier-label-value": OWNER[1],
    }
    conf.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return conf


def two_workers_conf(url: str, bucket: str, endpoint: str, *, api_key: str, cron_key: str) -> dict[str, str]:
    """The conf of tests/fixtures/projects/pnpm-two-workers: its API worker first, its cron worker in
    additional-workers."""
    cron = {"project-root": "services/cron-worker", "r2-object-key": cron_key,
            "worker-script-artifact-config-map-name": "cron-worker-artifact"}
    return conf_for(url, bucket, endpoint, project_root="services/api-worker", package_manager_directory=".",
                    r2_object_key=api_key, worker_script_artifact_config_map_name="api-worker-artifact",
                    kustomize_manifests_config_map_name="two-workers-manifests", additional_workers=json.dumps([cron]))


def hello_worker_variant(tmp_path: Path, name: str, *, remove: tuple[str, ...] = (),
                         files: dict[str, str] | None = None) -> Path:
    """A copy of examples/hello-worker with files removed, or written (relative path -> content)."""
    project = tmp_path / name
    shutil.copytree(REPO / "examples" / "hello-worker", project)
    for relative in remove:
        (project / relative).unlink()
    for relative, content in (files or {}).items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(content)
    return project


def objects_in(s3_client: Any, bucket: str) -> dict[str, bytes]:
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listing}


def workspace_of(run: PipelineRun) -> Path:
    return Path(run.xcom("setup", key="parameters")["workspace"])


# The bundles the example and the fixtures build, pinned: a change to how dependencies are fetched
# or their scripts run (issue 19's two-phase install) must not change a byte of what ships.
BUNDLE_SHA256 = {
    "hello-worker": "4d0bfa8564101292cc296829df774cb4deb59fdbf372f26ce7a81ebb53724319",
    "yarn-classic": "4d0bfa8564101292cc296829df774cb4deb59fdbf372f26ce7a81ebb53724319",
    "yarn-berry": "4d0bfa8564101292cc296829df774cb4deb59fdbf372f26ce7a81ebb53724319",
    "yarn-berry-pnp": "8a7e51dc3b20940161cf5d433b54e744aee929cc63e0e40c4e3880db1bf0a3a1",
    "pnpm": "88650e5a6991147ea8eca1586850ebf3f7daed2eda76cb7956051396d9fdcfc1",
    "bun": "4d0bfa8564101292cc296829df774cb4deb59fdbf372f26ce7a81ebb53724319",
    "pnpm-monorepo": "cf289ab02bb87353347ec46a1523ad116d9f0427c6b6514814a0c4989295e45b",
}


def assert_pinned(body: bytes, fixture: str) -> None:
    digest = hashlib.sha256(body).hexdigest()
    assert digest == BUNDLE_SHA256[fixture], f"{fixture} built {digest}, not the bytes every earlier build shipped"


def assert_published(run: PipelineRun, s3_client: Any, kube_api: Any, bucket: str, key: str) -> bytes:
    """The object, the XCom results and the artifact ConfigMap agree, byte for byte."""
    assert run.state == "success", run.task_states
    body = objects_in(s3_client, bucket)[key]
    digest = hashlib.sha256(body).hexdigest()
    assert run.xcom("bundle")["sha256"] == run.xcom("upload")["sha256"] == digest
    assert run.xcom("upload")["size_bytes"] == len(body)
    head = s3_client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]) == hashlib.sha256(body).digest()
    artifact = kube_api.get(NAMESPACE, "my-worker-artifact-metadata")
    assert artifact["data"] == {"bucket": bucket, "path": key, "content-hash": digest, "size-bytes": str(len(body))}
    assert artifact["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "planton-cloud", OWNER[0]: OWNER[1]}
    assert not workspace_of(run).exists(), "the run's workspace must be removed when the run ends"
    return body


def failure_output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def processes_with_environ(marker: str) -> list[int]:
    """PIDs of host processes whose environment holds ``marker``: inside a sandbox or not, started
    with ``setsid`` or not, children included (they inherit the environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


VALID = {
    "git-url": "https://github.com/org/repo.git",
    "r2-bucket-name": "planton-cloudflare-worker-scripts",
    "r2-endpoint-url": "https://074755a78d8e8f77c119a90a125e8a06.r2.cloudflarestorage.com",
    "r2-object-key": "my-worker/abc123def456.js",
    "worker-script-artifact-config-map-name": "my-worker-artifact-metadata",
    "kustomize-manifests-config-map-name": "my-worker-manifests",
}


def hostile_project(tmp_path: Path, targets: list[Path], port: int, marker: str) -> Path:
    package = json.loads((REPO / "examples/hello-worker/package.json").read_text())
    package["scripts"]["postinstall"] = "sh ./escape.sh install"
    return hello_worker_variant(tmp_path, f"hostile-{marker[:8]}", files={
        "escape.sh": (FIXTURES / "hostile" / "escape.sh").read_text(),
        "src/index.ts": (FIXTURES / "hostile" / "index.ts").read_text(),
        "src/leak.js": 'export const report = "";\n',
        "targets.txt": "".join(f"{target}\n" for target in targets),
        "port.txt": str(port),
        "marker.txt": marker,
        "package.json": json.dumps(package, indent=2),
        "wrangler.toml": 'name = "hostile"\nmain = "src/index.ts"\ncompatibility_date = "2024-09-23"\n\n'
                         '[build]\ncommand = "sh ./escape.sh bundle"\n',
    })


RENDERED_RUN = "manual__2026-11-30T00:00:00+00:00"


def render_pod(operator_class: type, monkeypatch: pytest.MonkeyPatch, *, checkout: dict[str, Any] | None = None,
               additional_workers: str = "[]", worker_index: int | None = None, git_url: str = VALID["git-url"],
               **settings: str) -> dict[str, Any]:
    """The pod ``operator_class`` would run in the kubernetes mode, as the API would receive it."""
    from cloudflare_worker_pipeline.parameters import PipelineParameters
    from cloudflare_worker_pipeline.settings import PipelineSettings
    from cloudflare_worker_pipeline.workspace import run_workspace
    from kubernetes.client import ApiClient

    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", "/srv/builds")
    for key, value in settings.items():
        monkeypatch.setenv(SETTING + key.upper(), value)
    params = PipelineParameters.from_conf({
        **VALID, "git-url": git_url, "r2-bucket-name": "scripts", "r2-object-key": "w/abc.js",
        "worker-script-artifact-config-map-name": "w-artifact", "kustomize-manifests-config-map-name": "w-manifests",
        "owner-identifier-label-key": "planton.cloud/service-id", "owner-identifier-label-value": "svc-1",
        "package-manager-directory": ".", "additional-workers": additional_workers,
    }, workspace=str(run_workspace(PipelineSettings.from_airflow_config(), "adhoc_airflow", RENDERED_RUN).path))
    upstream = {"checkout": checkout} if checkout is not None else {}
    if worker_index is not None:  # one instance of the mapped per-worker stages
        upstream["worker"] = params.workers[worker_index]
    operator = operator_class(task_id=operator_class.__name__.lower(), parameters=params.to_dict(), **upstream)
    runner = operator.make_runner({"run_id": RENDERED_RUN})
    seen = operator.script_parameters(runner)
    pod = runner.build_pod(operator.script, operator.script_env(seen), results_dir=operator.results_dir(seen),
                           timeout_seconds=900)
    return ApiClient().sanitize_for_serialization(pod)  # type: ignore[no-any-return]


def record_failure(context: Any) -> None:
    """A failure callback for tests (the ``failure_callback`` setting names it): appends the failed
    task's id to the file ``$CFW_TEST_FAILURES``."""
    import os

    with open(os.environ["CFW_TEST_FAILURES"], "a") as record:
        record.write(f"{context['ti'].task_id}\n")


class _UpperEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data.upper())


@contextmanager
def upper_echo_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 answering each chunk in upper case (so an answer proves the bytes
    went through it); yields its port. Stands in for a registry behind the egress proxy."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _UpperEcho)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
