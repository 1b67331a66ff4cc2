"""Build provenance: an in-toto statement (v1) with a SLSA provenance predicate (v1), stored
beside the bundle as ``<r2-object-key>.intoto.json`` before the bundle itself.

Its subjects are every object the run stored (the bundle, its modules, its source map) with their
SHA-256; the predicate says what was built (repository, commit, the lockfile's digest), how (the
parameters, the pipeline's version, the package manager and Node) and by whom (the Airflow DAG and
run). The lockfile's digest and the tool versions are the worker's own measurements; what the
sandboxed build reported (its versions, Wrangler's) sits apart, under ``reportedByBuild``. The
platform signs it (:mod:`cloudflare_worker_pipeline.signing`, ``<r2-object-key>.intoto.jsonl``),
and its digest is in the artifact ConfigMap (``…/provenance-sha256``) for a reader to check.
"""

from __future__ import annotations

import json
from typing import Any

from cloudflare_worker_pipeline.get_provider_info import VERSION
from cloudflare_worker_pipeline.parameters import PipelineParameters

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://cloudflare-worker-pipeline.planton.cloud/buildtypes/wrangler-dry-run/v1"
PROVENANCE_METADATA = "provenance-sha256"  # the bundle object's metadata: SHA-256 of its statement
# What code inside the build's sandbox reported (tool versions, the lockfile digest it computed),
# kept apart from what the platform measured: the repository could have forged it.
REPORTED_KEY = "reportedByBuild"
REPORTED_NOTE = "reported by code running in the build's sandbox; not measured by the platform"


def provenance_key(bundle_key: str) -> str:
    return f"{bundle_key}.intoto.json"


def statement(*, p: PipelineParameters, subjects: dict[str, str], commit: str, toolchain: dict[str, str],
              reported: dict[str, str], dag_id: str, run_id: str, execution_mode: str, started: str,
              finished: str, byproducts: dict[str, str] | None = None) -> dict[str, Any]:
    """The statement: ``subjects`` maps each stored object's key to its SHA-256 (hex); ``toolchain``
    is what the worker measured (:mod:`cloudflare_worker_pipeline.toolchain`), ``reported`` what
    code in the sandbox said (kept apart, under ``runDetails.reportedByBuild``); ``byproducts``
    maps what the build recorded beside it (its egress log) to its digest."""
    parameters = {key: value for key, value in p.to_dict().items() if key != "workspace"}
    dependencies: list[dict[str, Any]] = [{"uri": f"git+{p.git_url}", "digest": {"gitCommit": commit}}]
    if toolchain.get("lockfile") and toolchain.get("lockfile-sha256"):
        lockfile = f"{p.package_manager_directory.rstrip('/')}/{toolchain['lockfile']}".removeprefix("./")
        dependencies.append({"name": lockfile, "digest": {"sha256": toolchain["lockfile-sha256"]}})
    versions = {"cloudflare-worker-pipeline": VERSION, "node": toolchain.get("node", ""),
                "package-manager": toolchain.get("package-manager", "")}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": key, "digest": {"sha256": digest}} for key, digest in sorted(subjects.items())],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": parameters,
                "internalParameters": {"dag_id": dag_id, "execution_mode": execution_mode},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": f"urn:cloudflare-worker-pipeline:airflow-dag:{dag_id}", "version": versions},
                "metadata": {"invocationId": f"{dag_id}/{run_id}", "startedOn": started, "finishedOn": finished},
                **({"byproducts": [{"name": key, "digest": {"sha256": digest}}
                                   for key, digest in sorted(byproducts.items())]} if byproducts else {}),
                REPORTED_KEY: {**{key: value for key, value in sorted(reported.items()) if value},
                               "note": REPORTED_NOTE},
            },
        },
    }


def statement_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, indent=1).encode()


def parse_toolchain(text: str) -> dict[str, str]:
    """The install stage's ``toolchain`` result: ``key=value`` lines."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip()[:200] for key, value in pairs}
