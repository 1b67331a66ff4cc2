"""What each stage hands the next, as typed XCom values (the stages' ``results``, like Tekton's).

A stage script declares its result files (``StageOperator.results``); the stage checks they were
all written, then turns them into one of these.
"""

from __future__ import annotations

from typing import TypedDict


class UploadedFile(TypedDict):
    key: str
    kind: str  # "module", "source-map", "provenance" or "egress-log"
    sha256: str
    size_bytes: int


class StoredBuild(TypedDict):
    """The object at the key already holds this build (same fingerprint): what it holds."""

    key: str
    sha256: str
    size_bytes: int
    files: list[UploadedFile]  # the modules and source map its manifest lists
    provenance: UploadedFile | None  # its in-toto statement, when the metadata names one
    egress_log: UploadedFile | None  # its egress log, when the metadata names one
    signature: UploadedFile | None  # its signed provenance (DSSE envelope), when the metadata names one
    gzip_bytes: int | None  # from the object's metadata; None for objects stored before it was recorded
    brotli_bytes: int | None


class NodeVersion(TypedDict):
    version: str  # "20", "20.11" or "20.11.1"
    source: str  # "parameter node-version", or the version file's path in the repository (.nvmrc, .node-version)


class WorkerBuild(TypedDict):
    fingerprint: str  # SHA-256 of what decides the worker's bundle (cloudflare_worker_pipeline.fingerprint)
    stored_build: StoredBuild | None  # set when its object already holds this build: its bundle and upload skipped


class EgressEntry(TypedDict):
    """Connections a stage asked the egress proxy for, to one host and port, with one outcome."""

    host: str
    port: int
    allowed: bool
    reason: str  # why it was refused or failed; "" when allowed
    connections: int
    bytes_out: int  # sent by the stage
    bytes_in: int  # received by the stage


class CheckoutResult(WorkerBuild):
    """The fingerprint and stored build are the first worker's (the top-level parameters')."""

    commit_sha: str  # the full SHA of the checked-out commit
    node_version: NodeVersion | None  # the Node the project asks for (parameter, .nvmrc, .node-version), or None
    additional_workers: list[WorkerBuild]  # the same for each entry of additional-workers, in order
    egress: list[EgressEntry] | None  # what git reached; None where the worker cannot see it (a pod, no sandbox)
    toolchain: dict[str, str]  # measured by the worker (toolchain.py): lockfile, lockfile-sha256, package-manager, node


def worker_build(checkout: CheckoutResult, index: int) -> WorkerBuild:
    """The fingerprint and stored build of the run's worker ``index`` (0: the top-level parameters')."""
    if index == 0:
        return WorkerBuild(fingerprint=checkout["fingerprint"], stored_build=checkout["stored_build"])
    return checkout.get("additional_workers", [])[index - 1]


class InstallResult(TypedDict):
    package_manager: str  # npm, yarn-classic, yarn-berry, pnpm, bun, or none, as the lockfile named it
    toolchain: dict[str, str]  # package-manager-version, node-version, lockfile, lockfile-sha256
    install_scripts: str  # which ran after the fetch, offline: run, allowlist or none (the setting)
    egress: list[EgressEntry] | None  # what the fetch reached; None where the worker cannot see it


class BuildFile(TypedDict):
    """A file Wrangler wrote beside the bundle, part of the worker."""

    name: str  # as in dist/, e.g. c600…-add.wasm or index.js.map
    kind: str  # "module" (imported by the bundle by relative path) or "source-map"
    sha256: str
    size_bytes: int
    gzip_bytes: int


class DurableObjects(TypedDict):
    """The Durable Objects the Wrangler config declares, as Wrangler reads it."""

    bindings: list[dict[str, str | None]]  # name, class_name, script_name (another worker's class)
    migrations: list[dict[str, object]]  # tag, new_classes, new_sqlite_classes, renamed_classes, deleted_classes


class ReportRow(TypedDict):
    input: str  # a source file as esbuild saw it, e.g. node_modules/hono/dist/hono.js
    bytes: int  # what it adds to the bundle


class Reproducibility(TypedDict):
    checked: bool  # the reproducibility-check parameter
    identical: bool | None  # a second build in a fresh directory wrote the same bytes; None when not checked
    differing: list[str]  # the files in dist/ that differed (or "(the second build failed)")


class BundleResult(TypedDict):
    bundle_path: str  # relative to the project root, e.g. dist/index.js
    sha256: str  # hex
    size_bytes: int
    wrangler_version: str
    gzip_bytes: int  # gzip size, as Cloudflare's compressed-size limits count
    brotli_bytes: int  # brotli size, as served to browsers that ask for it
    files: list[BuildFile]  # additional modules and the source map, uploaded beside the bundle
    reproducibility: Reproducibility
    report: list[ReportRow]  # the inputs that weigh most in the bundle, largest first (why a bundle grew)
    durable_objects: DurableObjects | None  # None when the project's Wrangler cannot say
    inputs_outside: list[str]  # files read outside the fingerprinted trees (at most 20 named): never skipped to


class TypeCheckResult(TypedDict):
    typescript: str  # "checked" (no type errors), "off", "no-tsconfig" or "no-typescript"


class UploadResult(TypedDict):
    artifact_url: str  # <endpoint>/<bucket>/<key>, as the spec's task printed it
    bucket: str
    key: str
    sha256: str
    size_bytes: int
    commit_sha: str
    replaced_sha256: str | None  # what the key held before this upload (a fixed key), or None
    files: list[UploadedFile]  # the modules and source map, stored before the bundle
    provenance: UploadedFile | None  # the in-toto statement (kind "provenance"), stored before the bundle
    egress_log: UploadedFile | None  # <key>.egress.json (kind "egress-log"), stored before the bundle
    signature: UploadedFile | None  # <key>.intoto.jsonl (kind "provenance-signature"), or None: unsigned
    gzip_bytes: int | None
    brotli_bytes: int | None
    skipped: bool  # the object already held this build: the upload was skipped, publish verified it


class KustomizeResult(TypedDict):
    overlays: list[str]  # the overlay names rendered, each a key of the manifests ConfigMap


class WorkerRelease(TypedDict):
    artifact: UploadResult  # the object the ConfigMap describes: uploaded by this run, or already stored
    artifact_config_map: str  # where the ConfigMap went; "superseded: ..." when a newer run owns the key


class PublishResult(WorkerRelease):
    """The artifact and its ConfigMap are the first worker's (the top-level parameters')."""

    manifests_config_map: str
    additional_workers: list[WorkerRelease]  # the same for each entry of additional-workers, in order
