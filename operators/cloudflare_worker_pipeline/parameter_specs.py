"""The pipeline's parameters as one table: name, default, form section, title, description, and the
JSON-schema rules (pattern, maxLength) that Airflow checks when a run is triggered.

The same table drives the DAG's ``params`` (so the REST API answers HTTP 400 naming the parameter
before a run exists, and the trigger form shows titles, sections and descriptions), the first
pass of :mod:`cloudflare_worker_pipeline.parameters`' validation, and the README's parameter table
(a test keeps them equal). The semantic checks a pattern cannot express (the sparse directories
covering the project, hosts on the allowlists) run in ``setup`` (its validation step).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_RELATIVE_PATH = r"(?![/-])[A-Za-z0-9._@+=/-]"
_REF = r"(?![-/.])[A-Za-z0-9._/+=@-]+"


# What an object key may hold: S3's safe characters and the few more S3 and R2 accept that mean
# nothing to a shell (``builds/commit=<sha>/worker.mjs``); as a regex character class.
OBJECT_KEY_CHARACTERS = r"A-Za-z0-9!_.*'()/=+,@-"


class InvalidParameterError(ValueError):
    """A run parameter is missing or malformed; the message names it and says what was expected."""

    def __init__(self, name: str, expected: str, value: object = None, *, show_value: bool = True) -> None:
        shown = f", got {value!r}" if show_value and value is not None else ""
        super().__init__(f"Invalid parameter '{name}': expected {expected}{shown}")
        self.parameter = name



@dataclass(frozen=True)
class ParameterSpec:
    """One parameter. ``default`` None means required."""

    name: str
    default: str | None
    section: str
    title: str
    description: str
    pattern: str
    max_length: int

    @property
    def required(self) -> bool:
        return self.default is None

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def schema_problem(self, value: str) -> str | None:
        """What the JSON schema would refuse in ``value`` (the REST API's 400), or None."""
        if len(value) > self.max_length:
            return f"at most {self.max_length} characters"
        if not self.regex.search(value):
            return f"a value matching the pattern {self.pattern}"
        return None


SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec("git-url", None, "Source", "Git URL",
                  "Repository holding the worker: `https://`, `ssh://`, `git://` or scp-like `git@host:org/repo.git`.",
                  r"^(?!-)(?!.*(://|@)-)[^\s\x00-\x1f\x7f$`;|&<>(){}'\"\\*?\[\]!]+$", 2048),
    ParameterSpec("git-revision", "main", "Source", "Git revision", "Branch, tag, or full or short commit SHA to build.",
                  rf"^{_REF}$", 255),
    ParameterSpec("git-branch", "", "Source", "Git branch",
                  "Optional: the branch to fetch; `git-revision` is then a commit on it.", rf"^({_REF})?$", 255),
    ParameterSpec("sparse-checkout-directories", "", "Source", "Sparse checkout directories",
                  "Comma-separated directories to check out (files at the root are always kept); empty checks out "
                  "everything.", r"^[A-Za-z0-9._@+=/, -]*$", 2048),
    ParameterSpec("project-root", ".", "Build", "Project root",
                  "Directory of the worker inside the repository (holds `wrangler.toml`).", rf"^{_RELATIVE_PATH}*$", 1024),
    ParameterSpec("package-manager-directory", "", "Build", "Package manager directory",
                  "Where dependencies are installed: empty means the project root, `.` the repository root "
                  "(monorepo workspaces).", rf"^{_RELATIVE_PATH}*$", 1024),
    ParameterSpec("kustomize-base-directory", "_kustomize", "Build", "Kustomize base directory",
                  "Directory under the project root holding `overlays/`.", rf"^{_RELATIVE_PATH}+$", 1024),
    ParameterSpec("r2-bucket-name", None, "Storage", "R2 bucket name",
                  "Bucket that receives the bundle: 3-63 lowercase letters, digits, `-` and `.`.",
                  r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", 63),
    ParameterSpec("r2-endpoint-url", None, "Storage", "R2 endpoint URL",
                  "S3-compatible endpoint, e.g. `https://<account>.r2.cloudflarestorage.com`; its host must be "
                  "allowed by the deployment.", r"^https?://[A-Za-z0-9.:\[\]-]+/?$", 2048),
    ParameterSpec("r2-object-key", None, "Storage", "R2 object key",
                  "Object path in the bucket, e.g. `my-worker/{commit_sha}.js`: letters, digits and "
                  "`/ ! - _ . * ' ( ) = + , @`; `{commit_sha}` and `{short_sha}` are filled with the built commit.",
                  # no leading '/', no empty, '.' or '..' segment: what parameter_fields.stored_object_key checks
                  rf"^(?!/)(?!.*//)(?!(.*/)?\.{{1,2}}(/|$))[{{}}{OBJECT_KEY_CHARACTERS}]+$", 1024),
    ParameterSpec("worker-script-artifact-config-map-name", None, "Kubernetes metadata", "Artifact metadata ConfigMap",
                  "ConfigMap that records `bucket`, `path`, `content-hash` and `size-bytes`.",
                  rf"^(?!kube-){_DNS_SUBDOMAIN}$", 253),
    ParameterSpec("kustomize-manifests-config-map-name", None, "Kubernetes metadata", "Kustomize manifests ConfigMap",
                  "ConfigMap that holds each rendered overlay.", rf"^(?!kube-){_DNS_SUBDOMAIN}$", 253),
    ParameterSpec("owner-identifier-label-key", "", "Kubernetes metadata", "Owner label key",
                  "Optional label key put on both ConfigMaps, e.g. `planton.cloud/service-id`.",
                  rf"^(({_DNS_SUBDOMAIN}/)?{_LABEL_NAME})?$", 317),
    ParameterSpec("owner-identifier-label-value", "", "Kubernetes metadata", "Owner label value",
                  "Value of the owner label; give both key and value, or neither.", rf"^({_LABEL_NAME})?$", 63),
    ParameterSpec("force-rebuild", "false", "Build", "Force a rebuild",
                  "`true` installs, bundles and uploads even when the object at the key already holds this "
                  "build (the same fingerprint of commit trees, parameters and toolchain).", r"^(true|false)$", 5),
    ParameterSpec("upload-source-maps", "true", "Build", "Upload source maps",
                  "`true` has Wrangler write the source map and uploads it beside the bundle as `<r2-object-key>.map`; "
                  "`false` builds without one.", r"^(true|false)$", 5),
    ParameterSpec("bundle-size-limit-bytes", "10485760", "Build", "Bundle size limit",
                  "The worker (the bundle and its additional modules, not the source map) over this many bytes fails "
                  "before anything is uploaded; at most the deployment's `max_bundle_bytes`.", r"^[1-9][0-9]{0,10}$", 11),
    ParameterSpec("bundle-size-limit-applies-to", "raw", "Build", "Bundle size measure",
                  "`raw` compares the bytes as built, `gzip` their gzip size (what Cloudflare's compressed-size "
                  "limits count).", r"^(raw|gzip)$", 4),
    ParameterSpec("node-version", "", "Build", "Node version",
                  "Node for install, bundle and typecheck, e.g. `20` or `22.11.0`; empty reads the project's "
                  "`.nvmrc` or `.node-version`, else the deployment's default.", r"^(\d{1,3}(\.\d{1,4}){0,2})?$", 14),
    ParameterSpec("typescript-check", "auto", "Build", "TypeScript type check",
                  "`auto` runs the project's own `tsc --noEmit` beside the bundle when the project root has a "
                  "`tsconfig.json` and TypeScript is installed; `on` requires both; `off` skips it.",
                  r"^(auto|on|off)$", 4),
    ParameterSpec("reproducibility-check", "false", "Build", "Reproducibility check",
                  "`true` bundles the same checkout a second time in a fresh directory and reports whether every "
                  "file Wrangler wrote is byte for byte the same, and if not which.", r"^(true|false)$", 5),
    ParameterSpec("wrangler-extra-args", "[]", "Build", "Extra Wrangler arguments",
                  'JSON array of flags for `wrangler deploy --dry-run`, e.g. `["--minify", "--env", "staging"]`; '
                  "only flags that shape the bundle (`--minify`, `--env`, `--define`, `--var`, `--alias`, "
                  "`--compatibility-date`...).", r"^\[.*\]$", 4096),
    ParameterSpec("build-command", "[]", "Build", "Build command",
                  'JSON array: a command run in the project root before Wrangler, e.g. `["npm", "run", "codegen"]`, '
                  "in the bundle stage's sandbox; each element one argument, never a shell string.",
                  r"^\[.*\]$", 8192),
    ParameterSpec("additional-workers", "[]", "Build", "Additional workers",
                  'JSON array: the service\'s workers beyond the first (which `project-root`, `r2-object-key` and '
                  '`worker-script-artifact-config-map-name` name), e.g. `[{"project-root": "services/b", '
                  '"r2-object-key": "b/{commit_sha}.js", "worker-script-artifact-config-map-name": "b-artifact"}]`; '
                  "one checkout and one install, then a bundle, upload and artifact ConfigMap for each.",
                  r"^\[.*\]$", 32768),
)
SPECS_BY_NAME: dict[str, ParameterSpec] = {spec.name: spec for spec in SPECS}
PARAMETER_NAMES = tuple(SPECS_BY_NAME)


def dag_params(defaults: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The DAG's ``params``: one :class:`~airflow.sdk.Param` per parameter, with its JSON schema.

    ``defaults`` replace the spec's defaults (a scheduled service's own values).
    """
    from airflow.sdk import Param

    params: dict[str, Any] = {}
    for spec in SPECS:
        default = (defaults or {}).get(spec.name, spec.default)
        schema: dict[str, Any] = {"title": spec.title, "section": spec.section, "description_md": spec.description,
                                  "pattern": spec.pattern, "maxLength": spec.max_length}
        if spec.required and default is None:
            params[spec.name] = Param(type="string", minLength=1, **schema)
        else:  # the UI form sends an optional field left empty as null: it means the default
            params[spec.name] = Param(default, type=["null", "string"], **schema)
    return params
