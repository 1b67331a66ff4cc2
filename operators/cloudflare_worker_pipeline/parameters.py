"""The pipeline's parameters in one place: their schema, their validation, the paths they imply.

Conf keys are the spec's hyphenated names, exactly: the service catalogue sends them. Everything
downstream reads a validated :class:`PipelineParameters`, never the raw conf.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cloudflare_worker_pipeline.parameter_commands import build_command, wrangler_extra_args
from cloudflare_worker_pipeline.parameter_specs import (
    PARAMETER_NAMES,
    SPECS,
    SPECS_BY_NAME,
    InvalidParameterError,
    dag_params,
)
from cloudflare_worker_pipeline.parameter_urls import (
    SAFE_GIT_SCHEMES,
    check_endpoint_url,
    check_git_url,
    git_host,
    required,
)

__all__ = ["PARAMETER_NAMES", "InvalidParameterError", "PipelineParameters", "dag_params", "git_host"]


_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._@+=-]+$")
_REF = re.compile(r"^[A-Za-z0-9._/+=@-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# S3's "safe characters" for object keys, plus "/" between segments.
_OBJECT_KEY = re.compile(r"^[A-Za-z0-9!_.*'()/-]+$")
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "planton-cloud")
SHORT_SHA_LENGTH = 12


@dataclass(frozen=True)
class PipelineParameters:
    """Validated run parameters plus the run's workspace; what every stage reads."""

    git_url: str
    git_revision: str
    git_branch: str
    sparse_checkout_directories: tuple[str, ...]
    project_root: str
    package_manager_directory: str
    kustomize_base_directory: str
    r2_bucket_name: str
    r2_endpoint_url: str
    r2_object_key: str
    worker_script_artifact_config_map_name: str
    kustomize_manifests_config_map_name: str
    owner_label: tuple[str, str] | None
    force_rebuild: bool
    workspace: str
    upload_source_maps: bool = True
    bundle_size_limit_bytes: int = 10 * 1024 * 1024
    bundle_size_limit_applies_to: str = "raw"  # or "gzip"
    typescript_check: str = "auto"  # or "on", "off"
    reproducibility_check: bool = False
    node_version: str = ""  # "" = the project's .nvmrc / .node-version, else the deployment's default
    wrangler_extra_args: tuple[str, ...] = ()
    build_command: tuple[str, ...] = ()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], *, workspace: str,
                  git_schemes: Collection[str] = SAFE_GIT_SCHEMES) -> PipelineParameters:
        """Validate raw conf (spec names) and return parameters, or raise InvalidParameterError.

        ``git_schemes``: the URL schemes ``git-url`` may use (``PipelineSettings.git_url_schemes``).
        """
        unknown = sorted(set(conf) - set(SPECS_BY_NAME))
        if unknown:
            raise InvalidParameterError(unknown[0], f"one of the pipeline's parameters ({', '.join(PARAMETER_NAMES)})")
        raw = {spec.name: _string(spec.name, spec.default if conf.get(spec.name) is None and spec.default is not None
                                  else conf.get(spec.name)) for spec in SPECS}

        project_root = _relative_path("project-root", raw["project-root"])
        sparse = tuple(
            _relative_path("sparse-checkout-directories", part.strip(), allow_root=False)
            for part in raw["sparse-checkout-directories"].split(",")
            if part.strip()
        )
        pm_dir = raw["package-manager-directory"]
        package_manager_directory = project_root if pm_dir == "" else _relative_path("package-manager-directory", pm_dir)
        params = cls(
            git_url=check_git_url(raw["git-url"], git_schemes),
            git_revision=_ref("git-revision", raw["git-revision"], required=True),
            git_branch=_ref("git-branch", raw["git-branch"], required=False),
            sparse_checkout_directories=sparse,
            project_root=project_root,
            package_manager_directory=package_manager_directory,
            kustomize_base_directory=_relative_path("kustomize-base-directory", raw["kustomize-base-directory"], allow_root=False),
            r2_bucket_name=_bucket(raw["r2-bucket-name"]),
            r2_endpoint_url=check_endpoint_url(raw["r2-endpoint-url"]),
            r2_object_key=_object_key(raw["r2-object-key"]),
            worker_script_artifact_config_map_name=_dns_subdomain("worker-script-artifact-config-map-name", raw["worker-script-artifact-config-map-name"]),
            kustomize_manifests_config_map_name=_dns_subdomain("kustomize-manifests-config-map-name", raw["kustomize-manifests-config-map-name"]),
            owner_label=_owner_label(raw["owner-identifier-label-key"], raw["owner-identifier-label-value"]),
            force_rebuild=_flag("force-rebuild", raw["force-rebuild"]),
            workspace=workspace,
            upload_source_maps=_flag("upload-source-maps", raw["upload-source-maps"]),
            bundle_size_limit_bytes=_positive("bundle-size-limit-bytes", raw["bundle-size-limit-bytes"]),
            bundle_size_limit_applies_to=_choice("bundle-size-limit-applies-to", raw["bundle-size-limit-applies-to"],
                                                 ("raw", "gzip")),
            reproducibility_check=_flag("reproducibility-check", raw["reproducibility-check"]),
            node_version=raw["node-version"],  # its pattern (a version number or empty) is checked below
            typescript_check=_choice("typescript-check", raw["typescript-check"], ("auto", "on", "off")),
            wrangler_extra_args=wrangler_extra_args(raw["wrangler-extra-args"]),
            build_command=build_command(raw["build-command"]),
        )
        for name, path in (("project-root", params.project_root), ("package-manager-directory", params.package_manager_directory)):
            if sparse and not _covered_by_sparse(path, sparse):
                raise InvalidParameterError(
                    name, f"a directory inside one of sparse-checkout-directories ({', '.join(sparse)})", path
                )
        for spec in SPECS:  # what the REST API's schema refuses, refused here too (services, older runs)
            problem = spec.schema_problem(raw[spec.name])
            if problem:
                raise InvalidParameterError(spec.name, problem, raw[spec.name])
        return params

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PipelineParameters:
        """Rebuild parameters from :meth:`to_dict` output (an XCom value)."""
        fields = dict(values)
        fields["sparse_checkout_directories"] = tuple(fields["sparse_checkout_directories"])
        label = fields.get("owner_label")
        fields["owner_label"] = tuple(label) if label else None
        fields.setdefault("force_rebuild", False)  # a run validated before the parameter existed
        for listed in ("wrangler_extra_args", "build_command"):
            fields[listed] = tuple(fields.get(listed) or ())
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, so the XCom reads cleanly in the UI."""
        values = asdict(self)
        values["sparse_checkout_directories"] = list(self.sparse_checkout_directories)
        values["owner_label"] = list(self.owner_label) if self.owner_label else None
        values["wrangler_extra_args"], values["build_command"] = list(self.wrangler_extra_args), list(self.build_command)
        return values

    @property
    def checkout_dir(self) -> Path:
        return Path(self.workspace) / "source"

    @property
    def project_dir(self) -> Path:
        return self.checkout_dir / self.project_root

    @property
    def install_dir(self) -> Path:
        return self.checkout_dir / self.package_manager_directory

    @property
    def kustomize_dir(self) -> Path:
        return self.project_dir / self.kustomize_base_directory

    @property
    def owner_labels(self) -> dict[str, str]:
        return {self.owner_label[0]: self.owner_label[1]} if self.owner_label else {}

    @property
    def owner(self) -> str:
        """``<owner label key>=<value>``, or empty: recorded with what a run writes, to tell owners apart."""
        return f"{self.owner_label[0]}={self.owner_label[1]}" if self.owner_label else ""

    @property
    def labels(self) -> dict[str, str]:
        """The ConfigMaps' labels, as the spec has them."""
        return {MANAGED_BY_LABEL[0]: MANAGED_BY_LABEL[1], **self.owner_labels}


def _string(name: str, value: object) -> str:
    if value is None:
        raise InvalidParameterError(name, "a value (this parameter is required)")
    if not isinstance(value, str):
        raise InvalidParameterError(name, "a string", value)
    if _CONTROL.search(value):
        raise InvalidParameterError(name, "no control characters (newlines, tabs, NUL)", value)
    if value != value.strip():
        raise InvalidParameterError(name, "no leading or trailing whitespace", value)
    if len(value) > 2048:
        raise InvalidParameterError(name, "at most 2048 characters", f"{len(value)} characters")
    return value


def _relative_path(name: str, value: str, *, allow_root: bool = True) -> str:
    if value in ("", "."):
        if allow_root:
            return "."
        raise InvalidParameterError(name, "a directory below the repository root", value)
    if value.startswith("/") or value.startswith("-"):
        raise InvalidParameterError(name, "a relative path that does not start with '/' or '-'", value)
    parts = [part for part in PurePosixPath(value).parts if part != "."]
    for part in parts:
        if part == "..":
            raise InvalidParameterError(name, "a path that stays inside the repository (no '..')", value)
        if not _PATH_SEGMENT.match(part):
            raise InvalidParameterError(name, "a path of letters, digits and . _ - @ + = only", value)
    return "/".join(parts) or "."


def _covered_by_sparse(path: str, sparse: tuple[str, ...]) -> bool:
    return path == "." or any(path == d or path.startswith(d + "/") for d in sparse)


def _ref(name: str, value: str, *, required: bool) -> str:
    if not value:
        if required:
            raise InvalidParameterError(name, "a branch, tag or commit SHA")
        return ""
    if (
        not _REF.match(value)
        or value.startswith(("-", "/", "."))
        or value.endswith(("/", ".", ".lock"))
        or ".." in value
        or "//" in value
        or len(value) > 255
    ):
        raise InvalidParameterError(name, "a git branch, tag or commit SHA (letters, digits, . _ / - only)", value)
    return value


def _bucket(value: str) -> str:
    name = "r2-bucket-name"
    required(name, value)
    if not _BUCKET.match(value) or ".." in value:
        raise InvalidParameterError(name, "3-63 lowercase letters, digits, '-' or '.', starting and ending alphanumeric", value)
    return value


def object_key_for_commit(template: str, commit: str) -> str:
    """Fill ``{commit_sha}`` and ``{short_sha}`` (its first 12 characters) in an object key."""
    return template.replace("{commit_sha}", commit).replace("{short_sha}", commit[:SHORT_SHA_LENGTH])


def _object_key(value: str) -> str:
    name = "r2-object-key"
    required(name, value)
    filled = object_key_for_commit(value, "0" * 40)  # checked as it will be stored
    if "{" in filled or "}" in filled:
        raise InvalidParameterError(name, "no braces other than the placeholders {commit_sha} and {short_sha}", value)
    _stored_object_key(filled, value)
    return value


def _stored_object_key(filled: str, value: str) -> None:
    name = "r2-object-key"
    if filled.startswith("/"):
        raise InvalidParameterError(name, "a key without a leading '/', like my-worker/abc123.js", value)
    if ".." in filled.split("/") or "." in filled.split("/") or "//" in filled:
        raise InvalidParameterError(name, "a key without '.', '..' or empty path segments", value)
    if len(filled.encode()) > 1024:
        raise InvalidParameterError(name, "at most 1024 bytes", f"{len(filled.encode())} bytes")
    if not _OBJECT_KEY.match(filled):
        raise InvalidParameterError(
            name, "S3's safe characters only: letters, digits, / ! - _ . * ' ( ) and the placeholders {commit_sha}, "
            "{short_sha}", value)


def _dns_subdomain(name: str, value: str) -> str:
    required(name, value)
    if len(value) > 253 or not DNS_SUBDOMAIN.match(value):
        raise InvalidParameterError(
            name, "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', at most 253 characters", value
        )
    if value.startswith("kube-"):  # kube-root-ca.crt, kube-proxy...: the cluster's own
        raise InvalidParameterError(name, "a name not starting with 'kube-', which Kubernetes' own ConfigMaps use", value)
    return value


def _positive(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise InvalidParameterError(name, "a positive whole number of bytes", value)
    return int(value)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidParameterError(name, f"one of {', '.join(choices)}", value)
    return value


def _flag(name: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise InvalidParameterError(name, "true or false", value)
    return value == "true"


def _owner_label(key: str, value: str) -> tuple[str, str] | None:
    if not key and not value:
        return None
    if not key:
        raise InvalidParameterError("owner-identifier-label-key", "a label key, since owner-identifier-label-value is set")
    if not value:
        raise InvalidParameterError("owner-identifier-label-value", "a label value, since owner-identifier-label-key is set")
    prefix, _, label_name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))) or len(label_name) > 63 or not _LABEL_NAME.match(label_name):
        raise InvalidParameterError(
            "owner-identifier-label-key", "a Kubernetes label key: optional DNS prefix and '/', then a name of at most 63 characters", key
        )
    if key == MANAGED_BY_LABEL[0]:
        raise InvalidParameterError("owner-identifier-label-key", f"a key other than {MANAGED_BY_LABEL[0]}, which the pipeline sets", key)
    if len(value) > 63 or not _LABEL_NAME.match(value):
        raise InvalidParameterError(
            "owner-identifier-label-value", "a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends", value
        )
    return key, value
