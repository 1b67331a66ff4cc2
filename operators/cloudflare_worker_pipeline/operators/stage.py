"""The base every script-running stage shares: validated parameters in, a script run where the
execution mode says, results out. Subclasses say which script, with what environment, and what
to make of its results."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError
from cloudflare_worker_pipeline.clone_paths import PathEscapesCloneError, check_confined
from cloudflare_worker_pipeline.execution.base import ScriptRunner, StageScriptError
from cloudflare_worker_pipeline.execution.local import LocalScriptRunner
from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy, SandboxUnavailableError, ca_paths
from cloudflare_worker_pipeline.hooks.workspace_claims import workspace_volume
from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.settings import PipelineSettings


class PipelineOperator(BaseOperator):
    """An operator reading the validated parameters.

    :param parameters: the output of ``validate_parameters`` (an XComArg resolving to
        :meth:`PipelineParameters.to_dict`); operators never read the raw DAG-run conf.
    """

    template_fields: Sequence[str] = ("parameters",)
    ui_color = "#f6821f"  # Cloudflare orange

    def __init__(self, *, parameters: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parameters = parameters

    @cached_property
    def pipeline(self) -> PipelineParameters:
        return PipelineParameters.from_dict(self.parameters)

    @cached_property
    def settings(self) -> PipelineSettings:
        return PipelineSettings.from_airflow_config()


class StageOperator(PipelineOperator):
    """A stage whose work is a script in ``cloudflare_worker_pipeline/scripts``, run locally or in a pod."""

    script: ClassVar[str]
    image_setting: ClassVar[str] = "node_image"  # the PodSettings field naming this stage's image
    # What the script reaches over the network: "none", "git" or "registry". The local sandbox
    # shares the network only with the latter two; pods carry it as a label NetworkPolicies select.
    egress: ClassVar[str] = "none"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._runner: ScriptRunner | None = None
        self._run_id = ""

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        """The script's environment, with paths as the script sees them (``p``)."""
        raise NotImplementedError

    def secret_env(self) -> dict[str, str]:
        """Credentials the script needs (local mode only: pods read them from a Kubernetes secret)."""
        return {}

    def secret_refs(self) -> dict[str, tuple[str, str]]:
        """In pods: env name -> (Secret name, key) for the same credentials; empty when none."""
        return {}

    def finish(self, results: dict[str, str]) -> Any:
        """Turn the script's results into the task's XCom value."""
        raise NotImplementedError

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        """Parameter name -> directory in the clone the script works in; each must stay in the clone."""
        return {}

    def results_dir(self, p: PipelineParameters) -> Path:
        return Path(p.workspace) / "results" / self.task_id

    def sandbox_policy(self, p: PipelineParameters) -> SandboxPolicy:
        """What the script may see and write in the local mode: the clone, the run's HOME, its results."""
        home = Path(p.workspace) / ".home"
        return SandboxPolicy(writable=(p.checkout_dir, home, self.results_dir(p)), home=home,
                             read_only=self.host_read_only_paths(), network=self.egress != "none")

    def host_read_only_paths(self) -> tuple[Path, ...]:
        """Host paths every sandbox shows read-only: the setting's, and the worker's CA files."""
        return (*self.settings.sandbox_read_only_paths, *ca_paths(os.environ))

    def execute(self, context: Any) -> Any:
        self._run_id = str(context["run_id"])
        runner = self._make_runner(context)
        try:
            return self.finish(self._run(runner, lambda **kw: runner.run(self.script, **kw)))
        except TaskDeferred as deferred:  # the pod runs on; resume in resume_stage
            raise TaskDeferred(trigger=deferred.trigger, method_name="resume_stage",
                               kwargs=deferred.kwargs, timeout=deferred.timeout) from None

    def resume_stage(self, context: Any, event: dict[str, Any] | None = None, **_: Any) -> Any:
        """Deferrable pods come back here when their trigger fires."""
        self._run_id = str(context["run_id"])
        runner = self._make_runner(context)
        try:
            return self.finish(self._run(runner, lambda **kw: runner.resume(self.script, event=event or {}, **kw)))  # type: ignore[attr-defined]
        except TaskDeferred as deferred:
            raise TaskDeferred(trigger=deferred.trigger, method_name="resume_stage",
                               kwargs=deferred.kwargs, timeout=deferred.timeout) from None

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.terminate()

    def _run(self, runner: ScriptRunner, run: Any) -> dict[str, str]:
        self._runner = runner
        seen = self.script_parameters(runner)
        try:
            for parameter, relative in self.confined_directories(self.pipeline).items():
                check_confined(self.pipeline.checkout_dir, relative, parameter)
            secrets = self.secret_env()
            if secrets and runner.workspace is not None and not self.secret_refs():
                raise AirflowFailException(
                    f"{self.task_id}: credentials from an Airflow connection cannot reach a pod without appearing in "
                    "its spec; in the kubernetes mode give them as a Kubernetes secret (setting git_credentials_secret)"
                )
            return run(  # type: ignore[no-any-return]
                env={**self.script_env(seen), **(secrets if runner.workspace is None else {})},
                results_dir=self.results_dir(seen),
                timeout_seconds=self.settings.stage_timeout_seconds,
            )
        except (PathEscapesCloneError, UnsafeBuildFileError, SandboxUnavailableError) as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        except StageScriptError as error:
            if error.diagnosed:  # the script named the problem: retrying would only repeat it
                raise AirflowFailException(str(error)) from None
            raise
        finally:
            self._runner = None

    def script_parameters(self, runner: ScriptRunner) -> PipelineParameters:
        """The parameters with the workspace where the script sees it (a pod mounts it elsewhere)."""
        workspace = getattr(runner, "workspace", None)
        return replace(self.pipeline, workspace=workspace) if workspace else self.pipeline

    def _make_runner(self, context: Any) -> ScriptRunner:
        """The one place the execution mode becomes a runner."""
        settings = self.settings
        if settings.execution_mode == "local":
            return LocalScriptRunner(self.log, workspace=Path(self.pipeline.workspace),
                                     policy=self.sandbox_policy(self.pipeline), sandboxed=settings.sandbox != "none")
        from cloudflare_worker_pipeline.execution.kubernetes import KubernetesScriptRunner, stage_pod

        pods = settings.pods
        claim_name, sub_path = workspace_volume(settings, self.pipeline, self.dag_id, context["run_id"])

        def pod_factory(script: str, env: dict[str, str], timeout_seconds: int) -> Any:
            return stage_pod(
                task_id=self.task_id, stage=self.task_id.replace("_", "-"), script=script,
                image=getattr(pods, self.image_setting), env=env, pods=pods, namespace=settings.namespace,
                labels=self.pipeline.owner_labels, egress=self.egress, claim_name=claim_name, sub_path=sub_path, secret_refs=self.secret_refs(),
                timeout_seconds=timeout_seconds, kubernetes_conn_id=settings.kubernetes_conn_id,
            )

        return KubernetesScriptRunner(self.log, context, pod_factory, pods.workspace_mount_path)
