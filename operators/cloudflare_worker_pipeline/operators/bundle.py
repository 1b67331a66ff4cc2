"""Stage 3: bundling the worker with Wrangler."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.operators.node_stage import NodeStage

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.parameters import PipelineParameters
    from cloudflare_worker_pipeline.results import BuildFile, BundleResult, DurableObjects, ReportRow, Reproducibility


_BUNDLE_PATH = re.compile(r"^dist/[A-Za-z0-9._-]+\.m?js$")
# A file beside the bundle: Wrangler names modules "<sha1>-<source name>"; one path segment.
_FILE_NAME = re.compile(r"^(?!\.)[A-Za-z0-9._+@=-]{1,200}$")
_FILE_LINE = re.compile(r"^(?P<sha256>[0-9a-f]{64}) (?P<size>\d+) (?P<gzip>\d+) (?P<name>.*)$")
MAX_FILES = 100


class BundleWorkerOperator(NodeStage):
    """Run the project's own ``wrangler deploy --dry-run`` and return the bundle's facts.

    Returns ``bundle_path`` (relative to the project root), ``sha256`` (hex) and ``size_bytes``,
    the results the spec's Tekton task recorded; the gzip and brotli sizes; the ``files`` Wrangler
    wrote beside the bundle (additional modules, the source map), which upload stores beside it;
    and the config's Durable Objects. A worker over ``bundle-size-limit-bytes`` (raw or gzip), or
    any file over the ``max_bundle_bytes`` setting, fails here, before anything is uploaded.
    """

    script = "bundle.sh"
    results = ("bundle-path", "content-hash", "size-bytes", "wrangler-version", "compressed-sizes", "files", "report",
               "durable-objects", "reproducibility", "inputs")

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"project-root": p.project_root, "package-manager-directory": p.package_manager_directory}

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        return {**self.settings.install_env, "PROJECT_DIR": str(p.project_dir), "INSTALL_DIR": str(p.install_dir),
                "SOURCE_MAPS": "true" if p.upload_source_maps else "false",
                # one argument per line: validation refused control characters in every one
                "WRANGLER_EXTRA_ARGS": "\n".join(p.wrangler_extra_args), "BUILD_COMMAND": "\n".join(p.build_command),
                "REPRODUCIBILITY_CHECK": "true" if p.reproducibility_check else "false", "CHECKOUT_DIR": str(p.checkout_dir)}

    def _inputs_outside(self, listing: str) -> list[str]:
        """What the bundle read that this worker's fingerprint did not hash (at most 20 named)."""
        from cloudflare_worker_pipeline.fingerprint import inputs_outside
        from cloudflare_worker_pipeline.parameters import PipelineParameters

        run = PipelineParameters.from_dict(self.parameters)
        worker = self.worker or run.workers[0]
        return inputs_outside(listing, run, worker)[:20]

    def finish(self, results: dict[str, str], context: Any) -> BundleResult:
        from cloudflare_worker_pipeline import metrics
        from cloudflare_worker_pipeline.results import BundleResult

        path, size = results["bundle-path"], int(results["size-bytes"])
        if not _BUNDLE_PATH.match(path):
            raise AirflowFailException(f"ERROR: the bundle stage reported an unexpected bundle path {path!r}")
        gzip_bytes, brotli_bytes = (int(part) for part in results["compressed-sizes"].split())
        bundle_name = path.removeprefix("dist/")
        files = parse_files(results["files"], bundle_name)
        ceiling = self.settings.max_bundle_bytes
        for name, bytes_ in ((path, size), *((f"dist/{f['name']}", f["size_bytes"]) for f in files)):
            if bytes_ > ceiling:
                raise AirflowFailException(f"ERROR: Bundle too large: {name} is {bytes_} bytes, over the limit of "
                                           f"{ceiling} bytes (setting max_bundle_bytes)")
        check_worker_size(self.pipeline, path, size, gzip_bytes, files)
        metrics.bundle_size(self.dag_id, size)
        report = parse_report(results["report"])
        result = BundleResult(bundle_path=path, sha256=results["content-hash"], size_bytes=size,
                              wrangler_version=results["wrangler-version"].strip()[:100], gzip_bytes=gzip_bytes,
                              brotli_bytes=brotli_bytes, files=files, report=report,
                              reproducibility=parse_reproducibility(results["reproducibility"]),
                              durable_objects=parse_durable_objects(results["durable-objects"]),
                              inputs_outside=self._inputs_outside(results["inputs"]))
        if result["inputs_outside"]:
            self.log.warning("The bundle read files outside the fingerprinted directories (%s): its build is stored as "
                             "one a later run never skips to. A project root or package-manager-directory holding "
                             "them lets the skip see them", ", ".join(result["inputs_outside"]))
        if result["reproducibility"]["identical"] is False:
            self.log.warning("Not reproducible: a second build of this checkout in another directory differs in %s",
                             ", ".join(result["reproducibility"]["differing"]))
        if report:
            self.log.info("Largest inputs in the bundle: %s", ", ".join(f"{row['input']} {row['bytes']} B"
                                                                        for row in report[:10]))
        self.log.info("Bundle %s: %d bytes, gzip %d, brotli %d; beside it: %s", path, size, gzip_bytes, brotli_bytes,
                      ", ".join(f"{f['name']} ({f['kind']}, {f['size_bytes']} bytes)" for f in files) or "nothing")
        return result


def parse_files(listing: str, bundle_name: str) -> list[BuildFile]:
    """The bundle stage's ``files`` result: each a module the bundle imports, or its source map."""
    from cloudflare_worker_pipeline.results import BuildFile

    files: list[BuildFile] = []
    for line in listing.splitlines():
        match = _FILE_LINE.match(line)
        if not match or not _FILE_NAME.match(match["name"]):
            raise AirflowFailException(
                f"ERROR: Wrangler wrote a file whose name cannot be stored beside the bundle: {line[:200]!r} (letters, "
                "digits and . _ + @ = - only)")
        name = match["name"]
        kind = "source-map" if name == f"{bundle_name}.map" else "module"
        files.append(BuildFile(name=name, kind=kind, sha256=match["sha256"], size_bytes=int(match["size"]),
                               gzip_bytes=int(match["gzip"])))
    if len(files) > MAX_FILES:
        raise AirflowFailException(f"ERROR: Wrangler wrote {len(files)} files beside the bundle, more than {MAX_FILES}")
    return files


def check_worker_size(p: PipelineParameters, path: str, size: int, gzip_bytes: int, files: list[BuildFile]) -> None:
    """The worker (bundle and modules; the source map is not deployed code) against the run's limit."""
    modules = [f for f in files if f["kind"] == "module"]
    measure = p.bundle_size_limit_applies_to
    total = (gzip_bytes if measure == "gzip" else size) + sum(
        f["gzip_bytes"] if measure == "gzip" else f["size_bytes"] for f in modules)
    if total > p.bundle_size_limit_bytes:
        what = f"{path} and {len(modules)} module(s)" if modules else path
        raise AirflowFailException(
            f"ERROR: Bundle too large: {what} {'are' if modules else 'is'} {total} bytes{' gzipped' if measure == 'gzip' else ''}, "
            f"over the limit of {p.bundle_size_limit_bytes} bytes (parameter bundle-size-limit-bytes, measured "
            f"{measure}: bundle-size-limit-applies-to)")


def parse_reproducibility(raw: str) -> Reproducibility:
    """The bundle stage's ``reproducibility``: not-checked, identical, or differs <file>..."""
    from cloudflare_worker_pipeline.results import Reproducibility

    if raw == "identical":
        return Reproducibility(checked=True, identical=True, differing=[])
    if raw.startswith("differs"):
        rest = raw.removeprefix("differs").strip()
        differing = [rest] if rest.startswith("(") else rest.split()
        return Reproducibility(checked=True, identical=False, differing=differing[:100])
    return Reproducibility(checked=False, identical=None, differing=[])


def parse_report(raw: str) -> list[ReportRow]:
    """The bundle stage's report: esbuild's bytes per input, largest first (at most 25)."""
    from cloudflare_worker_pipeline.results import ReportRow

    try:
        rows = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(rows, list):
        return []
    return [ReportRow(input=str(row["input"])[:500], bytes=int(row["bytes"])) for row in rows[:25]
            if isinstance(row, dict) and isinstance(row.get("input"), str) and isinstance(row.get("bytes"), int)]


def parse_durable_objects(raw: str) -> DurableObjects | None:
    """The config's Durable Objects as the bundle stage read them through Wrangler; None if it could not."""
    from cloudflare_worker_pipeline.results import DurableObjects

    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("bindings"), list) or not isinstance(
            value.get("migrations"), list):
        return None
    return DurableObjects(bindings=value["bindings"], migrations=value["migrations"])
