"""Who owns what a run writes: one service's run must not replace another's object or ConfigMaps.

The catalogue's users choose object keys and ConfigMap names, so any run could name another
service's. What a run writes records its owner (``<owner label key>=<value>``, or empty): the
object in its ``owner`` metadata (and its repository), each ConfigMap in an annotation. A write
goes ahead only when the target is absent, or was written by this pipeline for the same owner.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

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
    """The object at the key was uploaded for another owner, by no owner, or (for force-rebuild)
    from another repository."""


OWNER_METADATA = "owner"  # an object's metadata: the owner label (key=value) of the run that stored it
NO_OWNER = "none"  # ... for a run without one (an empty value may not survive S3; "none" has no "=")
REPOSITORY_METADATA = "repository"  # an object's metadata: the git URL it was built from


def repository_metadata(git_url: str) -> str:
    """``git_url`` as S3 metadata carries it (ASCII; the validated URL already is)."""
    return quote(git_url, safe="/:@?&=+~,.-_!$'()*;%[]")


def object_identity(owner: str, git_url: str) -> dict[str, str]:
    """The metadata every object a run stores carries: who stored it, from which repository."""
    return {OWNER_METADATA: owner or NO_OWNER, REPOSITORY_METADATA: repository_metadata(git_url)}


def recorded_owner(metadata: dict[str, str]) -> str | None:
    """The owner an object's metadata records ("" for a run without one), or None: no owner metadata."""
    recorded = metadata.get(OWNER_METADATA)
    return "" if recorded == NO_OWNER else recorded


def same_identity(metadata: dict[str, str], owner: str, git_url: str) -> bool:
    """Was the object stored by a run of this owner from this repository (and so may be skipped to)?"""
    return (metadata.get(OWNER_METADATA) or NO_OWNER) == (owner or NO_OWNER) and \
        metadata.get(REPOSITORY_METADATA) == repository_metadata(git_url)


def check_object_owner(metadata: dict[str, str] | None, owner: str, *, adopt_unowned: bool = False,
                       repository: str | None = None) -> None:
    """May a run of ``owner`` replace the object whose metadata is ``metadata`` (None: absent)?

    Not when another owner uploaded it; not when it carries no owner metadata (another tool's
    object, or one uploaded before owners were recorded) unless the deployment adopts such
    objects (``adopt_unowned_objects``); and with ``repository`` (a forced rebuild's git URL), not
    when the object records another repository.
    """
    if metadata is None:
        return
    recorded = recorded_owner(metadata)
    if recorded is None and not adopt_unowned:
        raise ObjectOwnedElsewhereError(
            "exists without owner metadata (another tool's object, or one stored before owners were recorded); "
            "refusing to overwrite it: choose another r2-object-key, or set adopt_unowned_objects"
        )
    if recorded is not None and recorded != owner:
        raise ObjectOwnedElsewhereError(
            f"belongs to another owner ({recorded or 'no owner label'}), not {owner or 'a run without an owner label'}; "
            "refusing to overwrite it: choose another r2-object-key"
        )
    theirs = metadata.get(REPOSITORY_METADATA)
    if repository is not None and theirs is not None and theirs != repository_metadata(repository):
        raise ObjectOwnedElsewhereError(
            f"was built from another repository ({unquote(theirs)}), not {repository}; force-rebuild does not "
            "replace another repository's build: choose another r2-object-key"
        )
