"""Stage 1: the git checkout."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk.bases.skipmixin import SkipMixin
from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.links import CommitLink
from cloudflare_worker_pipeline.operators.stage import StageOperator

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.execution.egress import EgressPolicy
    from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
    from cloudflare_worker_pipeline.parameters import PipelineParameters, Worker
    from cloudflare_worker_pipeline.results import CheckoutResult, NodeVersion, StoredBuild, UploadedFile, WorkerBuild



class CheckoutOperator(StageOperator, SkipMixin):
    """Clone ``git-url`` at ``git-revision`` into a fresh workspace; return the commit SHA.

    Branches, tags and full SHAs are fetched one commit deep; short SHAs need the refs' history.
    Sparse checkout uses cone mode, so files at the repository root are always present. A clone
    holding a symlink that leads outside it fails here, naming the link.

    When the object at the key already holds this build (its metadata has this fingerprint) and
    ``force-rebuild`` is off, the task ``build_task_id`` is skipped, and with it every task after
    it whose trigger rule needs it to succeed: in the pipeline, install, bundle, typecheck and upload.
    With ``additional-workers``, each worker has its own fingerprint and key: install is skipped
    when every worker's object holds its build, else the stored workers' bundles skip themselves.

    :param build_task_id: the first task of the build (``install``).
    """

    script = "checkout.sh"
    image_setting = "git_image"
    egress = "git"
    results = ("commit", "input-trees")
    operator_extra_links = (CommitLink(),)
    inherits_from_skipmixin = True

    def __init__(self, *, build_task_id: str = "install", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.build_task_id = build_task_id

    def execute(self, context: Any) -> CheckoutResult:
        from cloudflare_worker_pipeline.modes import ExecutionMode

        settings, url = self.settings, self.pipeline.git_url
        if settings.execution_mode is ExecutionMode.KUBERNETES and settings.pods.git_proxy and not url.startswith(
                ("https://", "http://")):
            raise AirflowFailException(
                f"ERROR: git-url {url} cannot go through the egress proxy of checkout pods (setting pod_git_proxy "
                f"{settings.pods.git_proxy}): git reaches it over https only there; use the repository's https URL")
        return self._skip_stored_build(super().execute(context), context)

    def resume_stage(self, context: Any, event: dict[str, Any] | None = None, **kwargs: Any) -> CheckoutResult:
        return self._skip_stored_build(super().resume_stage(context, event, **kwargs), context)

    def _skip_stored_build(self, result: CheckoutResult, context: Any) -> CheckoutResult:
        """Skip the build when every worker's object already holds it. Skipping ends the task by an
        exception, so the result is stored first: the stages that still run read it."""
        if any(build["stored_build"] is None for build in (result, *result["additional_workers"])):
            return result
        from airflow.sdk.bases.xcom import BaseXCom

        ti = context["ti"]
        ti.xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=result)
        self.skip(ti, [self.dag.get_task(self.build_task_id)])
        return result  # not reached: skip() raises DownstreamTasksSkipped

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        from cloudflare_worker_pipeline.fingerprint import run_input_directories
        from cloudflare_worker_pipeline.git_ssh import is_ssh_url, known_hosts

        return {
            "GIT_URL": p.git_url,
            "GIT_REVISION": p.git_revision,
            "GIT_BRANCH": p.git_branch,
            "SPARSE_CHECKOUT_DIRECTORIES": "\n".join(p.sparse_checkout_directories),
            "CHECKOUT_DIR": str(p.checkout_dir),
            "GIT_ALLOW_PROTOCOL": ":".join(self.settings.git_url_schemes),
            "GIT_SUBMODULES": "true" if self.settings.git_submodules else "false",
            "INPUT_DIRECTORIES": "\n".join(run_input_directories(p)),
            **({"GIT_SSH_KNOWN_HOSTS": known_hosts(self.settings, self._git_connection())} if is_ssh_url(p.git_url)
               else {}),
        }

    def _git_connection(self) -> Any | None:
        from cloudflare_worker_pipeline.connections import optional_connection

        return optional_connection(self.settings.git_conn_id)

    def secret_env(self) -> dict[str, str]:
        """A private repository's credentials, from the git connection when it exists: the HTTPS
        token, or for an SSH URL the deploy key (see :mod:`cloudflare_worker_pipeline.git_ssh`)."""
        from cloudflare_worker_pipeline.git_ssh import deploy_key, is_ssh_url

        connection = self._git_connection()
        if connection is None:
            return {}
        if is_ssh_url(self.pipeline.git_url):
            key = deploy_key(connection)
            return {"GIT_SSH_KEY": key} if key else {}
        if not connection.password:
            return {}
        return {"GIT_USERNAME": connection.login or "x-access-token", "GIT_PASSWORD": connection.password}

    def secret_refs(self) -> dict[str, tuple[str, str]]:
        from cloudflare_worker_pipeline.git_ssh import is_ssh_url

        secret = self.settings.git_credentials_secret
        if not secret:
            return {}
        if is_ssh_url(self.pipeline.git_url):
            return {"GIT_SSH_KEY": (secret, "ssh-privatekey")}
        return {"GIT_USERNAME": (secret, "username"), "GIT_PASSWORD": (secret, "password")}

    def sandbox_policy(self, p: PipelineParameters) -> SandboxPolicy:
        """A ``file://`` repository (allowed by setting) is shown read-only; nothing else of the host."""
        from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy

        policy = super().sandbox_policy(p)
        if not self.settings.allow_file_git_urls or not (p.git_url.startswith("file://") or p.git_url.startswith("/")):
            return policy
        local = Path(urlsplit(p.git_url).path if p.git_url.startswith("file://") else p.git_url)
        return SandboxPolicy(writable=policy.writable, home=policy.home, egress=policy.egress,
                             read_only=(*policy.read_only, local))

    def egress_policy(self, p: PipelineParameters) -> EgressPolicy | None:
        """git may reach the hosts of ``allowed_git_hosts`` (the git URL's, its submodules') on git's
        ports: https, git://, ssh, the URL's own port, and plain http only where allowed."""
        from cloudflare_worker_pipeline.egress_policies import git_egress

        with contextlib.suppress(ValueError):
            return git_egress(self.settings, {urlsplit(p.git_url).port} - {None})  # type: ignore[arg-type]
        return git_egress(self.settings)

    def finish(self, results: dict[str, str], context: Any) -> CheckoutResult:
        from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError
        from cloudflare_worker_pipeline.clone_paths import PathEscapesCloneError, check_no_escaping_symlinks
        from cloudflare_worker_pipeline.node_version import NodeVersionError
        from cloudflare_worker_pipeline.results import CheckoutResult
        from cloudflare_worker_pipeline.toolchain import measured_toolchain

        p = self.pipeline
        try:
            check_no_escaping_symlinks(p.checkout_dir)
            node = self._node_version()
            # Before any repository code has run: what the provenance may trust.
            toolchain = measured_toolchain(Path(p.workspace), p.install_dir, self.settings, node)
        except (PathEscapesCloneError, NodeVersionError, UnsafeBuildFileError) as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        commit = results["commit"]
        first, *others = [self._worker_build(p, worker, commit, results["input-trees"], node) for worker in p.workers]
        return CheckoutResult(commit_sha=commit, node_version=node, fingerprint=first["fingerprint"],
                              stored_build=first["stored_build"], additional_workers=others,
                              egress=self.stage_egress, toolchain=toolchain)

    def _worker_build(self, p: PipelineParameters, worker: Worker, commit: str, input_trees: str,
                      node: NodeVersion | None) -> WorkerBuild:
        from cloudflare_worker_pipeline.fingerprint import bundle_fingerprint
        from cloudflare_worker_pipeline.results import WorkerBuild

        fingerprint = bundle_fingerprint(p, worker, self.settings, input_trees, node)
        return WorkerBuild(fingerprint=fingerprint,
                           stored_build=self._stored_build(p.for_worker(worker), commit, fingerprint))

    def _node_version(self) -> NodeVersion | None:
        """The Node the project asks for; in the local mode the worker's ``node`` must satisfy it."""
        from cloudflare_worker_pipeline.fingerprint import local_node_version
        from cloudflare_worker_pipeline.modes import ExecutionMode
        from cloudflare_worker_pipeline.node_version import NodeVersionError, image_for, project_node_version, satisfies
        from cloudflare_worker_pipeline.results import NodeVersion

        p = self.pipeline
        if p.node_version:
            wanted: NodeVersion | None = NodeVersion(version=p.node_version, source="parameter node-version")
        else:
            wanted = project_node_version(p.checkout_dir, list(dict.fromkeys([p.project_root, p.package_manager_directory])))
        if wanted is None:
            return None
        pods = self.settings.pods
        image = image_for(pods.node_image_template, pods.node_image, wanted)
        if self.settings.execution_mode is ExecutionMode.KUBERNETES:
            self.log.info("Node %s (%s): image %s", wanted["version"], wanted["source"], image)
            return wanted
        actual = local_node_version()
        if not satisfies(actual, wanted["version"]):
            raise NodeVersionError(
                f"the project asks for Node {wanted['version']} ({wanted['source']}), but this worker's node is "
                f"{actual or 'missing'}; run it on a worker with that Node, in the kubernetes mode (image {image}), "
                "or set the node-version parameter")
        self.log.info("Node %s (%s): this worker's node %s satisfies it", wanted["version"], wanted["source"], actual)
        return wanted

    def _stored_build(self, p: PipelineParameters, commit: str, fingerprint: str) -> StoredBuild | None:
        """The object at the worker's key, when it already holds this build and ``force-rebuild`` is off."""
        from cloudflare_worker_pipeline.egress_log import EGRESS_LOG_METADATA, egress_log_key
        from cloudflare_worker_pipeline.fingerprint import FINGERPRINT_METADATA, READS_OUTSIDE
        from cloudflare_worker_pipeline.hooks.r2 import R2Error
        from cloudflare_worker_pipeline.ownership import same_identity
        from cloudflare_worker_pipeline.parameters import object_key_for_commit
        from cloudflare_worker_pipeline.provenance import PROVENANCE_METADATA, provenance_key
        from cloudflare_worker_pipeline.results import StoredBuild
        from cloudflare_worker_pipeline.signing import SIGNATURE_METADATA, signature_key
        from cloudflare_worker_pipeline.worker_files import BROTLI_METADATA, GZIP_METADATA, MANIFEST_METADATA

        if p.force_rebuild:
            self.log.info("force-rebuild: building, whatever the object at the key holds")
            return None
        key = object_key_for_commit(p.r2_object_key, commit)
        try:
            stored = self.r2.stored(p.r2_bucket_name, key)
        except R2Error as error:  # the upload reports R2's trouble, if it lasts
            self.log.warning("Could not read s3://%s/%s (%s): building it", p.r2_bucket_name, key, error)
            return None
        if stored is not None and stored.metadata.get(FINGERPRINT_METADATA) == READS_OUTSIDE:
            self.log.info("s3://%s/%s holds a build that read files outside the fingerprinted directories: building it",
                          p.r2_bucket_name, key)
            return None
        if stored is None or stored.sha256 is None or stored.metadata.get(FINGERPRINT_METADATA) != fingerprint:
            return None
        if not same_identity(stored.metadata, p.owner, p.git_url):
            self.log.info("s3://%s/%s was stored by another owner or from another repository than this run's: "
                          "building it", p.r2_bucket_name, key)
            return None
        files = self._stored_files(p, key, stored.metadata.get(MANIFEST_METADATA))
        if files is None:
            return None
        signature = self._stored_companion(p, signature_key(key), "provenance-signature",
                                           stored.metadata.get(SIGNATURE_METADATA))
        if signature is None and self._signing():
            self.log.info("s3://%s/%s holds this build unsigned, and this deployment signs: building it",
                          p.r2_bucket_name, key)
            return None
        self.log.info("s3://%s/%s already holds this build (commit %s, fingerprint %s, sha256 %s): skipping %s and "
                      "what follows it; publish verifies the object and applies the ConfigMaps again "
                      "(force-rebuild=true builds anyway)", p.r2_bucket_name, key, stored.metadata.get("commit"),
                      fingerprint[:12], stored.sha256, self.build_task_id)
        return StoredBuild(key=key, sha256=stored.sha256, size_bytes=stored.size_bytes, files=files,
                           provenance=self._stored_companion(p, provenance_key(key), "provenance",
                                                             stored.metadata.get(PROVENANCE_METADATA)),
                           egress_log=self._stored_companion(p, egress_log_key(key), "egress-log",
                                                             stored.metadata.get(EGRESS_LOG_METADATA)),
                           signature=signature,
                           gzip_bytes=_number(stored.metadata.get(GZIP_METADATA)),
                           brotli_bytes=_number(stored.metadata.get(BROTLI_METADATA)))

    def _signing(self) -> bool:
        """Does this deployment sign provenance (a signing connection exists, or is required)?"""
        from cloudflare_worker_pipeline.signing import ProvenanceSigningError, run_signer

        settings = self.settings
        try:
            return run_signer(settings.provenance_signing_conn_id, settings.allow_unsigned_provenance) is not None
        except ProvenanceSigningError:
            return True  # required but unusable: the upload says why

    def _stored_companion(self, p: PipelineParameters, key: str, kind: str, sha256: str | None) -> UploadedFile | None:
        """The stored build's statement or egress log at ``key``, when the bundle's metadata names
        one and it still holds that digest."""
        from cloudflare_worker_pipeline.hooks.r2 import R2Error
        from cloudflare_worker_pipeline.results import UploadedFile

        if not sha256:
            return None
        try:
            found = self.r2.stored(p.r2_bucket_name, key)
        except R2Error:
            return None
        if found is None or found.sha256 != sha256:
            return None
        return UploadedFile(key=key, kind=kind, sha256=sha256, size_bytes=found.size_bytes)

    def _stored_files(self, p: PipelineParameters, key: str, manifest_sha256: str | None) -> list[UploadedFile] | None:
        """The files stored beside the bundle, from the manifest it names; None: build again."""
        from cloudflare_worker_pipeline.hooks.r2 import R2Error
        from cloudflare_worker_pipeline.worker_files import MAX_MANIFEST_BYTES, manifest_key, parse_manifest

        if not manifest_sha256:
            return []
        try:
            body = self.r2.read(p.r2_bucket_name, manifest_key(key), max_bytes=MAX_MANIFEST_BYTES)
        except R2Error as error:
            self.log.warning("Could not read the files manifest of s3://%s/%s (%s): building it", p.r2_bucket_name,
                             key, error)
            return None
        files = parse_manifest(body, manifest_sha256) if body is not None else None
        if files is None:
            self.log.info("s3://%s/%s names a files manifest that is missing or changed: building it", p.r2_bucket_name,
                          key)
        return files


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
