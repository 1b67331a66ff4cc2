"""Who owns what a run writes: one service's run must not replace another's object or ConfigMaps.

The catalogue's users choose object keys and ConfigMap names, so any run could name another
service's. What a run writes records its owner (``<owner label key>=<value>``, or empty): the
object in its ``owner`` metadata, each ConfigMap in an annotation. A write goes ahead only when
the target is absent, or was written by this pipeline for the same owner.
"""

from __future__ import annotations

from typing import Any

from cloudflare_worker_pipeline.parameters import MANAGED_BY_LABEL

ANNOTATION_PREFIX = "cloudflare-worker-pipeline.planton.cloud"
OWNER_ANNOTATION = f"{ANNOTATION_PREFIX}/owner"


class ConfigMapOwnedElsewhereError(RuntimeError):
    """The ConfigMap exists and belongs to someone else: another service, or not this pipeline."""


def check_ownership(existing: dict[str, Any] | None, manifest: dict[str, Any]) -> None:
    """A ConfigMap is written only if absent, or managed by this pipeline for the same owner.

    Without this, any run could name another service's ConfigMap (or one the cluster or another
    tool owns) and overwrite what its deploys read.
    """
    if existing is None:
        return
    meta, theirs = manifest["metadata"], existing.get("metadata") or {}
    labels, annotations = theirs.get("labels") or {}, theirs.get("annotations") or {}
    where = f"ConfigMap {meta['namespace']}/{meta['name']}"
    if labels.get(MANAGED_BY_LABEL[0]) != MANAGED_BY_LABEL[1]:
        raise ConfigMapOwnedElsewhereError(
            f"{where} exists and is not managed by this pipeline (it lacks the label "
            f"{MANAGED_BY_LABEL[0]}={MANAGED_BY_LABEL[1]}); refusing to overwrite it: choose another name"
        )
    ours = (meta.get("annotations") or {}).get(OWNER_ANNOTATION, "")
    recorded = annotations.get(OWNER_ANNOTATION)
    if recorded is None:  # written before owners were recorded: compare the owner label instead
        key, _, value = ours.partition("=")
        other = labels.get(key) if key else None
        recorded = ours if other in (None, value) else f"{key}={other}"
    if recorded != ours:
        raise ConfigMapOwnedElsewhereError(
            f"{where} belongs to another owner ({recorded or 'no owner label'}), not {ours or 'a run without an owner label'};"
            " refusing to overwrite it"
        )


class ObjectOwnedElsewhereError(RuntimeError):
    """The object at the key was uploaded for another owner."""


def check_object_owner(recorded: str | None, owner: str) -> None:
    """An object another owner uploaded (``recorded``: its ``owner`` metadata) is never replaced;
    an absent object, or one without owner metadata (``None``), may be written."""
    if recorded is not None and recorded != owner:
        raise ObjectOwnedElsewhereError(
            f"belongs to another owner ({recorded or 'no owner label'}), not {owner or 'a run without an owner label'}; "
            "refusing to overwrite it: choose another r2-object-key"
        )
