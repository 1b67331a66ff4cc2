"""The pipeline's parameters in one place: their schema, their validation, the paths they imply.

Conf keys are the spec's hyphenated names, exactly: the service catalogue sends them. Everything
downstream reads a validated :class:`PipelineParameters`, never the raw conf.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cloudflare_worker_pipeline.parameter_commands import build_command, wrangler_extra_args
from cloudflare_worker_pipeline.parameter_fields import (
    MANAGED_BY_LABEL,
    bucket,
    choice,
    covered_by_sparse,
    dns_subdomain,
    flag,
    object_key,
    object_key_for_commit,
    owner_label,
    positive,
    ref,
    relative_path,
    string,
)
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
)
from cloudflare_worker_pipeline.parameter_workers import (
    AdditionalWorker,
    Worker,
    additional_workers,
    check_distinct,
    parameter_name,
)

__all__ = ["MANAGED_BY_LABEL", "PARAMETER_NAMES", "InvalidParameterError", "PipelineParameters", "Worker", "dag_params",
           "git_host", "object_key_for_commit"]


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
    additional_workers: tuple[AdditionalWorker, ...] = ()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], *, workspace: str,
                  git_schemes: Collection[str] = SAFE_GIT_SCHEMES) -> PipelineParameters:
        """Validate raw conf (spec names) and return parameters, or raise InvalidParameterError.

        ``git_schemes``: the URL schemes ``git-url`` may use (``PipelineSettings.git_url_schemes``).
        """
        unknown = sorted(set(conf) - set(SPECS_BY_NAME))
        if unknown:
            raise InvalidParameterError(unknown[0], f"one of the pipeline's parameters ({', '.join(PARAMETER_NAMES)})")
        raw = {spec.name: string(spec.name, spec.default if conf.get(spec.name) is None and spec.default is not None
                                  else conf.get(spec.name), max(2048, spec.max_length)) for spec in SPECS}

        project_root = relative_path("project-root", raw["project-root"])
        sparse = tuple(
            relative_path("sparse-checkout-directories", part.strip(), allow_root=False)
            for part in raw["sparse-checkout-directories"].split(",")
            if part.strip()
        )
        pm_dir = raw["package-manager-directory"]
        package_manager_directory = project_root if pm_dir == "" else relative_path("package-manager-directory", pm_dir)
        params = cls(
            git_url=check_git_url(raw["git-url"], git_schemes),
            git_revision=ref("git-revision", raw["git-revision"], required=True),
            git_branch=ref("git-branch", raw["git-branch"], required=False),
            sparse_checkout_directories=sparse,
            project_root=project_root,
            package_manager_directory=package_manager_directory,
            kustomize_base_directory=relative_path("kustomize-base-directory", raw["kustomize-base-directory"], allow_root=False),
            r2_bucket_name=bucket(raw["r2-bucket-name"]),
            r2_endpoint_url=check_endpoint_url(raw["r2-endpoint-url"]),
            r2_object_key=object_key(raw["r2-object-key"]),
            worker_script_artifact_config_map_name=dns_subdomain("worker-script-artifact-config-map-name", raw["worker-script-artifact-config-map-name"]),
            kustomize_manifests_config_map_name=dns_subdomain("kustomize-manifests-config-map-name", raw["kustomize-manifests-config-map-name"]),
            owner_label=owner_label(raw["owner-identifier-label-key"], raw["owner-identifier-label-value"]),
            force_rebuild=flag("force-rebuild", raw["force-rebuild"]),
            workspace=workspace,
            upload_source_maps=flag("upload-source-maps", raw["upload-source-maps"]),
            bundle_size_limit_bytes=positive("bundle-size-limit-bytes", raw["bundle-size-limit-bytes"]),
            bundle_size_limit_applies_to=choice("bundle-size-limit-applies-to", raw["bundle-size-limit-applies-to"],
                                                 ("raw", "gzip")),
            reproducibility_check=flag("reproducibility-check", raw["reproducibility-check"]),
            node_version=raw["node-version"],  # its pattern (a version number or empty) is checked below
            typescript_check=choice("typescript-check", raw["typescript-check"], ("auto", "on", "off")),
            wrangler_extra_args=wrangler_extra_args(raw["wrangler-extra-args"]),
            build_command=build_command(raw["build-command"]),
            additional_workers=additional_workers(raw["additional-workers"]),
        )
        roots = [(parameter_name(w, "project-root"), w["project_root"]) for w in params.workers]
        for name, path in (*roots, ("package-manager-directory", params.package_manager_directory)):
            if sparse and not covered_by_sparse(path, sparse):
                raise InvalidParameterError(
                    name, f"a directory inside one of sparse-checkout-directories ({', '.join(sparse)})", path
                )
        for spec in SPECS:  # what the REST API's schema refuses, refused here too (services, older runs)
            problem = spec.schema_problem(raw[spec.name])
            if problem:
                raise InvalidParameterError(spec.name, problem, raw[spec.name])
        check_distinct(params.workers, params.package_manager_directory, params.kustomize_manifests_config_map_name)
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
        fields["additional_workers"] = tuple(AdditionalWorker(**w) for w in fields.get("additional_workers") or ())
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, so the XCom reads cleanly in the UI."""
        values = asdict(self)
        values["sparse_checkout_directories"] = list(self.sparse_checkout_directories)
        values["owner_label"] = list(self.owner_label) if self.owner_label else None
        values["wrangler_extra_args"], values["build_command"] = list(self.wrangler_extra_args), list(self.build_command)
        values["additional_workers"] = [asdict(worker) for worker in self.additional_workers]
        return values

    @property
    def workers(self) -> list[Worker]:
        """The run's workers: the top-level parameters' first, then ``additional-workers``."""
        return [Worker(index=index, project_root=w.project_root, r2_object_key=w.r2_object_key,
                       worker_script_artifact_config_map_name=w.worker_script_artifact_config_map_name)
                for index, w in enumerate((AdditionalWorker(self.project_root, self.r2_object_key,
                                                            self.worker_script_artifact_config_map_name),
                                           *self.additional_workers))]

    def for_worker(self, worker: Mapping[str, Any]) -> PipelineParameters:
        """The parameters as one worker's stages read them: its project root, key and ConfigMap."""
        return replace(self, project_root=worker["project_root"], r2_object_key=worker["r2_object_key"],
                       worker_script_artifact_config_map_name=worker["worker_script_artifact_config_map_name"],
                       additional_workers=())

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
