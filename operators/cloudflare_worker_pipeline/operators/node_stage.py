"""The stages that run the project's Node: install, bundle and typecheck."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloudflare_worker_pipeline.operators.stage import StageOperator
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

    @property
    def node_version(self) -> NodeVersion | None:
        return self.checkout.get("node_version") if self.checkout else None

    def stage_image(self) -> str:
        from cloudflare_worker_pipeline.node_version import image_for  # at run time: the DAG file stays cheap

        pods = self.settings.pods
        return image_for(pods.node_image_template, pods.node_image, self.node_version)
