"""The stages that run the project's Node: install, bundle and typecheck."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from cloudflare_worker_pipeline.operators.stage import StageOperator

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.results import CheckoutResult, NodeVersion



class NodeStage(StageOperator):
    """A stage running the project's Node, in the version ``checkout`` found it asks for: in the
    kubernetes mode its pod's image is ``node_image_template`` with that version (``node_image``
    when the project names none); in the local mode checkout has already checked the worker's.

    :param checkout: the output of the checkout stage; None when the operator is built alone.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields, "checkout")

    def __init__(self, *, checkout: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkout: CheckoutResult | None = checkout

    def execute(self, context: Any) -> Any:
        self.skip_stored_worker()
        return super().execute(context)

    def skip_stored_worker(self) -> None:
        """A per-worker stage whose worker's object already holds its build has nothing to do
        (checkout skipped install, and all that follows, only when every worker's does)."""
        from cloudflare_worker_pipeline.results import worker_build

        if self.worker is None or self.checkout is None:
            return
        stored = worker_build(self.checkout, self.worker_index)["stored_build"]
        if stored is not None:
            raise AirflowSkipException(f"s3://{self.pipeline.r2_bucket_name}/{stored['key']} already holds this "
                                       f"worker's build (sha256 {stored['sha256']}); publish verifies it")

    @property
    def node_version(self) -> NodeVersion | None:
        return self.checkout.get("node_version") if self.checkout else None

    def stage_image(self) -> str:
        from cloudflare_worker_pipeline.node_version import image_for  # at run time: the DAG file stays cheap

        pods = self.settings.pods
        return image_for(pods.node_image_template, pods.node_image, self.node_version)
