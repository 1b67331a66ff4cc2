"""The base every script-running stage shares: validated parameters in, a script run where the
execution mode says, results out. Subclasses say which script, with what environment, and what
to make of its results."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.execution.base import ScriptRunner
    from cloudflare_worker_pipeline.execution.egress import EgressPolicy
    from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
    from cloudflare_worker_pipeline.parameters import PipelineParameters, Worker
    from cloudflare_worker_pipeline.results import EgressEntry
    from cloudflare_worker_pipeline.settings import PipelineSettings


if TYPE_CHECKING:
    from cloudflare_worker_pipeline.hooks.r2 import R2Hook


class PipelineOperator(BaseOperator):
    """An operator reading the validated parameters.

    :param parameters: the validated parameters ``setup`` stores (an XComArg resolving to
        :meth:`PipelineParameters.to_dict`); operators never read the raw DAG-run conf. None: read
        from ``setup``'s XCom when the task runs, without an edge from ``setup`` (``publish``: Airflow
        lets only ``all_success`` tasks follow a setup task directly).
    :param worker: in the per-worker stages, the worker this task instance builds (one of
        :attr:`PipelineParameters.workers`, mapped by Airflow); its values replace the top-level ones.
    """

    template_fields: Sequence[str] = ("parameters", "worker")
    ui_color = "#f6821f"  # Cloudflare orange

    def __init__(self, *, parameters: Any = None, worker: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parameters = parameters
        self.worker: Worker | None = worker

    @cached_property
    def pipeline(self) -> PipelineParameters:
        from cloudflare_worker_pipeline.parameters import PipelineParameters

        raw = self.parameters
        if raw is None:
            from airflow.sdk import get_current_context

            from cloudflare_worker_pipeline.operators.setup import PARAMETERS_XCOM, SETUP_TASK_ID

            raw = get_current_context()["ti"].xcom_pull(task_ids=SETUP_TASK_ID, key=PARAMETERS_XCOM)
        parameters = PipelineParameters.from_dict(raw)
        return parameters.for_worker(self.worker) if self.worker else parameters

    @property
    def worker_index(self) -> int:
        return self.worker["index"] if self.worker else 0

    @cached_property
    def settings(self) -> PipelineSettings:
        from cloudflare_worker_pipeline.settings import PipelineSettings

        return PipelineSettings.from_airflow_config()

    @cached_property
    def r2(self) -> R2Hook:
        """The run's R2 (``r2-endpoint-url``, the ``r2_conn_id`` connection); the provider loads on first use."""
        from cloudflare_worker_pipeline.hooks.r2 import R2Hook

        return R2Hook(endpoint_url=self.pipeline.r2_endpoint_url, aws_conn_id=self.settings.r2_conn_id)


class StageOperator(PipelineOperator):
    """A stage whose work is a script in ``cloudflare_worker_pipeline/scripts``, run locally or in a pod.

    ``results`` declares the files the script writes in ``RESULTS_DIR``; a missing one fails the
    stage naming it, in both modes.
    """

    script: ClassVar[str]
    results: tuple[str, ...] = ()
    image_setting: ClassVar[str] = "node_image"  # the PodSettings field naming this stage's image
    # What the script reaches over the network: "none", "git" or "registry" (the local sandbox:
    # through the egress proxy, see egress_policy); pods carry it as a label NetworkPolicies select.
    # Instance attributes where a stage runs in phases (install: fetch, then scripts).
    egress: str = "none"
    uses_dependency_cache: bool = False  # install's fetch: the shared npm cache and pnpm store
    resume_method: str = "resume_stage"  # where a deferred pod's task resumes

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._runner: ScriptRunner | None = None
        self.stage_egress: list[EgressEntry] | None = None  # what the last script run reached, for finish()

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        """The script's environment, with paths as the script sees them (``p``)."""
        raise NotImplementedError

    def secret_env(self) -> dict[str, str]:
        """Credentials the script needs (local mode only: pods read them from a Kubernetes secret)."""
        return {}

    def secret_refs(self) -> dict[str, tuple[str, str]]:
        """In pods: env name -> (Secret name, key) for the same credentials; empty when none."""
        return {}

    def finish(self, results: dict[str, str], context: Any) -> Any:
        """Turn the script's declared results into the task's typed XCom value."""
        raise NotImplementedError

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        """Parameter name -> directory in the clone the script works in; each must stay in the clone."""
        return {}

    def results_dir(self, p: PipelineParameters) -> Path:
        """Where the script writes its results: one directory per task and worker (the mapped
        stages of several workers run side by side)."""
        return Path(p.workspace) / "results" / (f"{self.task_id}-{self.worker_index}" if self.worker_index else self.task_id)

    def sandbox_policy(self, p: PipelineParameters) -> SandboxPolicy:
        """What the script may see and write in the local mode: the clone, the run's HOME, its results."""
        from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy

        home = Path(p.workspace) / ".home"
        return SandboxPolicy(writable=(p.checkout_dir, home, self.results_dir(p)), home=home,
                             read_only=self.host_read_only_paths(), egress=self.egress_policy(p))

    def egress_policy(self, p: PipelineParameters) -> EgressPolicy | None:
        """Where the stage's code may connect, through the worker's egress proxy; None: nowhere."""
        return None

    def host_read_only_paths(self) -> tuple[Path, ...]:
        """Host paths every sandbox shows read-only: the setting's, and the worker's CA files."""
        from cloudflare_worker_pipeline.execution.sandbox import ca_paths

        return (*self.settings.sandbox_read_only_paths, *ca_paths(os.environ))

    def execute(self, context: Any) -> Any:
        runner = self.make_runner(context)
        return self._stage(runner, context, lambda seen: runner.run(self.script, **self._request(runner, seen)))

    def resume_stage(self, context: Any, event: dict[str, Any] | None = None, **_: Any) -> Any:
        """A deferred pod comes back here when its trigger fires."""
        runner = self.make_runner(context)
        timeout = self.settings.stage_timeout_seconds
        return self._stage(runner, context, lambda _: runner.resume(self.script, event or {}, timeout_seconds=timeout))  # type: ignore[attr-defined]

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.terminate()

    def script_parameters(self, runner: ScriptRunner) -> PipelineParameters:
        """The parameters with the workspace where the script sees it (a pod mounts it elsewhere)."""
        return replace(self.pipeline, workspace=runner.script_workspace)

    def _request(self, runner: ScriptRunner, seen: PipelineParameters) -> dict[str, Any]:
        """The script's environment, results directory and deadline, as ``runner`` sees the workspace."""
        from cloudflare_worker_pipeline.modes import ExecutionMode

        secrets = self.secret_env()
        if secrets and runner.mode is ExecutionMode.KUBERNETES:  # pods read credentials by Secret reference
            if self.secret_refs():
                secrets = {}
            else:
                raise AirflowFailException(
                    f"{self.task_id}: credentials from an Airflow connection cannot reach a pod without appearing in "
                    "its spec; in the kubernetes mode give them as a Kubernetes secret (setting git_credentials_secret)"
                )
        return {"env": {**self.script_env(seen), **secrets}, "results_dir": self.results_dir(seen),
                "timeout_seconds": self.settings.stage_timeout_seconds}

    def _stage(self, runner: ScriptRunner, context: Any, run: Callable[[PipelineParameters], dict[str, str]]) -> Any:
        from cloudflare_worker_pipeline import metrics
        from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError
        from cloudflare_worker_pipeline.clone_paths import PathEscapesCloneError, check_confined
        from cloudflare_worker_pipeline.execution.base import StageScriptError
        from cloudflare_worker_pipeline.execution.sandbox import SandboxUnavailableError
        from cloudflare_worker_pipeline.modes import ExecutionMode
        from cloudflare_worker_pipeline.workspace import WorkspaceNotVisibleError, check_visible

        self._runner = runner
        started = time.monotonic()
        try:
            if runner.mode is ExecutionMode.LOCAL:
                check_visible(Path(self.pipeline.workspace), self.task_id)
            for parameter, relative in self.confined_directories(self.pipeline).items():
                check_confined(self.pipeline.checkout_dir, relative, parameter)
            results = run(self.script_parameters(runner))
            self.stage_egress = runner.egress
            missing = [name for name in self.results if name not in results]
            if missing:
                raise AirflowFailException(
                    f"ERROR: {self.script} finished without writing its declared result(s) {', '.join(missing)} "
                    f"in RESULTS_DIR (it wrote: {', '.join(sorted(results)) or 'nothing'})")
            result = self.finish(results, context)
            metrics.stage_duration(self.dag_id, self.task_id, time.monotonic() - started)
            return result
        except (PathEscapesCloneError, UnsafeBuildFileError, SandboxUnavailableError, WorkspaceNotVisibleError) as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        except StageScriptError as error:
            if error.diagnosed:  # the script named the problem: retrying would only repeat it
                raise AirflowFailException(str(error)) from None
            raise
        finally:
            self._runner = None

    def stage_image(self) -> str:
        """The image of this stage's pod (the kubernetes mode)."""
        return str(getattr(self.settings.pods, self.image_setting))

    def make_runner(self, context: Any) -> ScriptRunner:
        """The one place the execution mode becomes a runner."""
        from cloudflare_worker_pipeline.execution.local import LocalScriptRunner
        from cloudflare_worker_pipeline.modes import ExecutionMode
        from cloudflare_worker_pipeline.workspace import run_workspace

        settings = self.settings
        if settings.execution_mode is ExecutionMode.LOCAL:
            return LocalScriptRunner(self.log, workspace=Path(self.pipeline.workspace),
                                     policy=self.sandbox_policy(self.pipeline), sandboxed=settings.sandbox != "none",
                                     limits=settings.stage_limits)
        mount = run_workspace(settings, self.dag_id, str(context["run_id"])).volume()
        assert mount is not None, "the kubernetes mode's workspaces are claims"
        from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

        from cloudflare_worker_pipeline.execution.kubernetes import PodScriptRunner
        from cloudflare_worker_pipeline.execution.pod_spec import StagePod

        pods = settings.pods
        task_labels = {"dag_id": self.dag_id, "task_id": self.task_id, "run_id": str(context["run_id"]),
                       "try_number": str(getattr(context.get("ti"), "try_number", 1)),
                       **({"map_index": str(self.worker_index)} if self.worker else {})}
        stage = StagePod(
            stage=self.pod_stage(), script=self.script, image=self.stage_image(), env={},
            namespace=settings.namespace, egress=self.egress, workspace=mount, timeout_seconds=settings.stage_timeout_seconds,
            labels={**{k: make_safe_label_value(v) for k, v in task_labels.items()}, **self.pipeline.owner_labels},
            secret_refs=self.secret_refs(), cache_claim=settings.dependency_cache_claim if self.uses_dependency_cache else "",
            proxy={"registry": pods.registry_proxy, "git": pods.git_proxy}.get(self.egress, ""),
        )
        return PodScriptRunner(self.log, pods=pods, conn_id=settings.kubernetes_conn_id, stage=stage,
                               workspace=Path(self.pipeline.workspace), results_dir=self.results_dir(self.pipeline),
                               resume_method=self.resume_method)

    def pod_stage(self) -> str:
        """The stage's name on its pods (name prefix and component label)."""
        return self.task_id.replace("_", "-")
