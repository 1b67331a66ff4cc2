"""What a real Wrangler build writes besides the bundle, and where it goes: additional modules
(.wasm, text) the bundle imports by relative path, the source map, a Durable Object's config, and
the compressed sizes; stored beside the bundle, recorded, and never published with a file missing.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from examples.local_stack.dag_run import run_pipeline
from tests.helpers import NAMESPACE, conf_for, failure_output, hello_worker_variant, objects_in

ANNOTATION = "cloudflare-worker-pipeline.planton.cloud"
WASM = "\0asm\x01\0\0\0"  # the smallest valid WebAssembly module
DURABLE_WORKER = {
    "src/add.wasm": WASM,
    "src/greeting.txt": "Hello from a text module\n",
    "src/modules.d.ts": 'declare module "*.txt" { const text: string; export default text; }\n'
                        'declare module "*.wasm" { const module: WebAssembly.Module; export default module; }\n',
    "src/index.ts": 'import wasm from "./add.wasm";\nimport greeting from "./greeting.txt";\n'
                    "export class Counter {\n  constructor(readonly state: unknown) {}\n"
                    '  async fetch(): Promise<Response> { return new Response("1"); }\n}\n'
                    "export default { fetch: () => new Response(greeting + String(wasm)) };\n",
    "wrangler.toml": 'name = "durable-worker"\nmain = "src/index.ts"\ncompatibility_date = "2024-09-23"\n\n'
                     '[[durable_objects.bindings]]\nname = "COUNTER"\nclass_name = "Counter"\n\n'
                     '[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["Counter"]\n',
}


def test_a_durable_object_worker_with_modules_ships_every_file_beside_its_bundle(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path) -> None:
    repo = git_server.publish("durable-worker", hello_worker_variant(tmp_path, "durable", files=DURABLE_WORKER))
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url, r2_object_key="durable/worker.js")
    run = run_pipeline(pipeline_dag, conf)
    assert run.state == "success", run.task_states

    bundle, upload = run.xcom("bundle"), run.xcom("upload")
    assert bundle["durable_objects"] == {
        "bindings": [{"name": "COUNTER", "class_name": "Counter", "script_name": None}],
        "migrations": [{"tag": "v1", "new_classes": [], "new_sqlite_classes": ["Counter"], "renamed_classes": [],
                        "deleted_classes": []}],
    }
    kinds = {f["name"].split("-", 1)[-1]: f["kind"] for f in bundle["files"]}
    assert kinds == {"add.wasm": "module", "greeting.txt": "module", "index.js.map": "source-map"}

    stored = objects_in(s3_client, bucket)
    code = stored["durable/worker.js"].decode()
    for file in bundle["files"]:
        key = "durable/worker.js.map" if file["kind"] == "source-map" else f"durable/{file['name']}"
        assert hashlib.sha256(stored[key]).hexdigest() == file["sha256"]
        if file["kind"] == "module":
            assert f'from "./{file["name"]}"' in code, "the bundle imports it by the name it is stored under"
    assert stored["durable/" + next(f["name"] for f in bundle["files"] if f["name"].endswith("add.wasm"))] == WASM.encode()
    assert json.loads(stored["durable/worker.js.map"])["version"] == 3
    assert sorted(f["key"] for f in upload["files"]) == sorted(k for k in stored if k not in (
        "durable/worker.js", "durable/worker.js.files.json", "durable/worker.js.intoto.json",
        "durable/worker.js.egress.json", "durable/worker.js.intoto.jsonl"))

    # The provenance statement names every stored file, the commit and the lockfile.
    statement = json.loads(stored["durable/worker.js.intoto.json"])
    assert upload["provenance"] == {"key": "durable/worker.js.intoto.json", "kind": "provenance", "size_bytes": len(
        stored["durable/worker.js.intoto.json"]), "sha256": hashlib.sha256(stored["durable/worker.js.intoto.json"]).hexdigest()}
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == {
        "durable/worker.js": bundle["sha256"], **{f["key"]: f["sha256"] for f in upload["files"]}}
    definition, details = statement["predicate"]["buildDefinition"], statement["predicate"]["runDetails"]
    assert definition["resolvedDependencies"] == [
        {"uri": f"git+{repo.url}", "digest": {"gitCommit": repo.head()}},
        {"name": "package-lock.json", "digest": {"sha256": run.xcom("checkout")["toolchain"]["lockfile-sha256"]}}]
    assert run.xcom("checkout")["toolchain"]["lockfile-sha256"] == run.xcom("install")["toolchain"]["lockfile-sha256"]
    assert definition["externalParameters"]["r2_object_key"] == "durable/worker.js"
    assert details["builder"]["version"]["package-manager"].startswith("npm@")  # the worker's own npm, measured
    assert details["reportedByBuild"]["wrangler"] == "4.86.0"
    assert details["metadata"]["invocationId"] == f"build_and_upload_cloudflare_worker/{run.run_id}"
    assert s3_client.head_object(Bucket=bucket, Key="durable/worker.js")["ContentType"] == "application/javascript"
    wasm_key = next(f["key"] for f in upload["files"] if f["key"].endswith("add.wasm"))
    assert s3_client.head_object(Bucket=bucket, Key=wasm_key)["ContentType"] == "application/wasm"

    artifact = connections.get(NAMESPACE, "my-worker-artifact-metadata")
    assert set(artifact["data"]) == {"bucket", "path", "content-hash", "size-bytes"}, "the spec's keys, unchanged"
    annotations = artifact["metadata"]["annotations"]
    assert annotations[f"{ANNOTATION}/source-map"] == "durable/worker.js.map"
    assert sorted(m["key"] for m in json.loads(annotations[f"{ANNOTATION}/modules"])) == sorted(
        f["key"] for f in upload["files"] if f["kind"] == "module")
    assert annotations[f"{ANNOTATION}/gzip-bytes"] == str(bundle["gzip_bytes"])
    assert annotations[f"{ANNOTATION}/brotli-bytes"] == str(bundle["brotli_bytes"])
    assert annotations[f"{ANNOTATION}/provenance-sha256"] == upload["provenance"]["sha256"]

    # The same commit again skips the build; the manifest says which files the stored bundle needs.
    again = run_pipeline(pipeline_dag, conf)
    assert again.task_states["upload"] == "skipped"
    assert again.xcom("publish")["artifact"]["files"] == upload["files"]
    assert again.xcom("publish")["artifact"]["provenance"] == upload["provenance"]

    # A module gone from R2 is never published over: the skipped build's publish refuses.
    s3_client.delete_object(Bucket=bucket, Key=wasm_key)
    broken = run_pipeline(pipeline_dag, conf)
    assert broken.task_states["publish"] == "failed"


def test_without_source_maps_only_the_bundle_is_stored(pipeline_dag, git_server, connections, bucket, s3_server,
                                                       s3_client, capfd) -> None:
    from tests.conftest import REPO

    repo = git_server.publish("no-maps", REPO / "examples" / "hello-worker")
    with_maps = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))
    assert with_maps.state == "success"
    source_map = json.loads(objects_in(s3_client, bucket)["my-worker/build.js.map"])
    assert source_map["sourceRoot"] == "dist", "no path of the worker's in what is uploaded"
    report = with_maps.xcom("bundle")["report"]
    assert "hono" in report[0]["input"], "the example's weight is its framework"
    assert [row["bytes"] for row in report] == sorted((row["bytes"] for row in report), reverse=True)
    assert sorted(objects_in(s3_client, bucket)) == ["my-worker/build.js", "my-worker/build.js.egress.json",
                                                     "my-worker/build.js.files.json", "my-worker/build.js.intoto.json",
                                                     "my-worker/build.js.intoto.jsonl", "my-worker/build.js.map"]

    without = run_pipeline(pipeline_dag, {**conf_for(repo.url, bucket, s3_server.endpoint_url, r2_object_key="plain/w.js"),
                                          "upload-source-maps": "false"})
    assert without.state == "success"
    assert without.xcom("bundle")["files"] == [] and without.xcom("upload")["files"] == []
    assert sorted(key for key in objects_in(s3_client, bucket) if key.startswith("plain/")) == [
        "plain/w.js", "plain/w.js.egress.json", "plain/w.js.intoto.json", "plain/w.js.intoto.jsonl"]
    annotations = connections.get(NAMESPACE, "my-worker-artifact-metadata")["metadata"]["annotations"]
    assert annotations[f"{ANNOTATION}/source-map"] == annotations[f"{ANNOTATION}/modules"] == "", "none now"
    failure_output(capfd)


def test_a_build_command_and_extra_wrangler_flags_shape_the_bundle_and_reach_no_shell(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path) -> None:
    project = hello_worker_variant(tmp_path, "generated", files={
        "src/index.ts": 'import { built } from "./generated";\n'
                        "declare const FLAVOUR: string;\n"
                        "export default { fetch: () => new Response(built + FLAVOUR) };\n",
    })
    repo = git_server.publish("generated", project)
    marker = "shell-ran-" + tmp_path.name
    conf = {**conf_for(repo.url, bucket, s3_server.endpoint_url),
            "build-command": json.dumps(["node", "-e", "require('fs').writeFileSync('src/generated.ts', "
                                         "'export const built = ' + JSON.stringify('made by the build command ' "
                                         "+ process.argv[1]) + ';')", f"$(touch {marker})"]),
            "wrangler-extra-args": json.dumps(["--minify", "--define", 'FLAVOUR:"vanilla"'])}
    run = run_pipeline(pipeline_dag, conf)
    assert run.state == "success", run.task_states

    code = objects_in(s3_client, bucket)["my-worker/build.js"].decode()
    assert '"vanilla"' in code
    assert "\n  " not in code, "minified: no indented lines"
    assert f"made by the build command $(touch {marker})" in code, "the argument arrived as text, never run by a shell"


@pytest.mark.parametrize("fixture,manager", [("hello-worker", "npm"), ("yarn-berry-pnp", "yarn-berry")])
def test_the_reproducibility_check_bundles_again_elsewhere_and_finds_the_same_bytes(
        pipeline_dag, git_server, connections, bucket, s3_server, fixture, manager) -> None:
    """Yarn PnP keeps its cache inside the project, so the bundle names it by a relative path."""
    from tests.conftest import REPO

    source = REPO / "examples" / "hello-worker" if fixture == "hello-worker" else REPO / "tests" / "fixtures" / "projects" / fixture
    repo = git_server.publish(f"reproducible-{fixture}", source)
    run = run_pipeline(pipeline_dag, {**conf_for(repo.url, bucket, s3_server.endpoint_url),
                                      "reproducibility-check": "true"})
    assert run.state == "success", run.task_states
    assert run.xcom("install")["package_manager"] == manager
    assert run.xcom("bundle")["reproducibility"] == {"checked": True, "identical": True, "differing": []}


def test_a_build_that_differs_between_directories_is_reported_with_the_files_that_differ(
        pipeline_dag, git_server, connections, bucket, s3_server, tmp_path) -> None:
    project = hello_worker_variant(tmp_path, "path-dependent", files={
        "src/index.ts": 'import { where } from "./where";\nexport default { fetch: () => new Response(where) };\n'})
    repo = git_server.publish("path-dependent", project)
    command = ["node", "-e", "require('fs').writeFileSync('src/where.ts', 'export const where = ' + "
                             "JSON.stringify(process.cwd()) + ';')"]
    run = run_pipeline(pipeline_dag, {**conf_for(repo.url, bucket, s3_server.endpoint_url),
                                      "reproducibility-check": "true", "build-command": json.dumps(command)})
    assert run.state == "success", "a difference is reported, not a failure"
    reproducibility = run.xcom("bundle")["reproducibility"]
    assert reproducibility["checked"] and reproducibility["identical"] is False
    assert reproducibility["differing"] == ["index.js", "index.js.map"]
