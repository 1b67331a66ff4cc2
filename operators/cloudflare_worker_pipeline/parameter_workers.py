"""``additional-workers``: a service's workers beyond the first, built from the same checkout and
the same install.

The top-level ``project-root``, ``r2-object-key`` and ``worker-script-artifact-config-map-name``
name the first worker, as the spec has them (a single-worker service sends nothing more). Each
entry of ``additional-workers`` names one more, with the same three keys; the pipeline's
per-worker stages (bundle, typecheck, upload) are mapped over the run's workers by Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from cloudflare_worker_pipeline.parameter_fields import dns_subdomain, object_key, relative_path
from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError

NAME = "additional-workers"
MAX_ADDITIONAL_WORKERS = 16
_KEYS = ("project-root", "r2-object-key", "worker-script-artifact-config-map-name")
_EXAMPLE = ('[{"project-root": "services/b", "r2-object-key": "b/{commit_sha}.js", '
            '"worker-script-artifact-config-map-name": "b-artifact"}]')


@dataclass(frozen=True)
class AdditionalWorker:
    project_root: str
    r2_object_key: str
    worker_script_artifact_config_map_name: str


class Worker(TypedDict):
    """One worker of the run, as the mapped stages receive it."""

    index: int  # 0: the top-level parameters; 1, 2...: the entries of additional-workers, in order
    project_root: str
    r2_object_key: str
    worker_script_artifact_config_map_name: str


def additional_workers(value: str) -> tuple[AdditionalWorker, ...]:
    """Parse ``additional-workers``: a JSON array of objects with exactly the three keys."""
    try:
        entries = json.loads(value) if value.strip() else []
    except ValueError:
        raise InvalidParameterError(NAME, f"a JSON array of objects, e.g. {_EXAMPLE}", value) from None
    if not isinstance(entries, list):
        raise InvalidParameterError(NAME, f"a JSON array of objects, e.g. {_EXAMPLE}", value)
    if len(entries) > MAX_ADDITIONAL_WORKERS:
        raise InvalidParameterError(NAME, f"at most {MAX_ADDITIONAL_WORKERS} workers", len(entries))
    workers = []
    for number, entry in enumerate(entries, 1):
        where = f"{NAME}[{number}]"
        if not isinstance(entry, dict) or set(entry) != set(_KEYS) or not all(isinstance(v, str) for v in entry.values()):
            raise InvalidParameterError(where, f"an object with exactly the string keys {', '.join(_KEYS)}", entry)
        workers.append(AdditionalWorker(
            project_root=relative_path(f"{where}.project-root", entry["project-root"]),
            r2_object_key=object_key(entry["r2-object-key"], f"{where}.r2-object-key"),
            worker_script_artifact_config_map_name=dns_subdomain(f"{where}.worker-script-artifact-config-map-name",
                                                                 entry["worker-script-artifact-config-map-name"])))
    return tuple(workers)


def parameter_name(worker: Worker, name: str) -> str:
    """How errors name a worker's parameter: ``r2-object-key`` for the first (top-level) worker,
    ``additional-workers[1].r2-object-key`` for the next, numbered as the mapped stages' map index."""
    return f"{NAME}[{worker['index']}].{name}" if worker["index"] else name


def check_distinct(workers: Sequence[Worker], install_directory: str, manifests_config_map: str) -> None:
    """Workers build side by side in one checkout: each needs its own project root (its ``dist/``),
    object key and ConfigMap, and a project root the one install serves."""
    seen: dict[str, dict[str, str]] = {"root": {}, "key": {}, "map": {manifests_config_map: "kustomize-manifests-config-map-name"}}
    for worker in workers:
        root, key = worker["project_root"], worker["r2_object_key"]
        config_map = worker["worker_script_artifact_config_map_name"]
        if worker["index"] and not inside(root, install_directory):
            raise InvalidParameterError(parameter_name(worker, "project-root"), "a directory inside "
                                        f"package-manager-directory ({install_directory}), where the run's one install is",
                                        root)
        for kind, value, name in (("root", root, "project-root"), ("map", config_map,
                                                                   "worker-script-artifact-config-map-name")):
            if value in seen[kind]:
                raise InvalidParameterError(parameter_name(worker, name), f"a value other than {seen[kind][value]}'s",
                                            value)
            seen[kind][value] = parameter_name(worker, name)
        for other, parameter in seen["key"].items():
            if key.startswith(other) or other.startswith(key):  # x.js and x.js.map: one's files are the other's
                raise InvalidParameterError(parameter_name(worker, "r2-object-key"), "a key that neither extends nor is "
                                            f"extended by {parameter} ({other}), whose files are stored beside it", key)
        seen["key"][key] = parameter_name(worker, "r2-object-key")


def inside(path: str, directory: str) -> bool:
    return directory == "." or path == directory or path.startswith(directory + "/")
