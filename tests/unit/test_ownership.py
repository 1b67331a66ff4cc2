"""Who may replace an object: the rules of :mod:`cloudflare_worker_pipeline.ownership` on their own."""

from __future__ import annotations

import pytest
from cloudflare_worker_pipeline.ownership import (
    ObjectOwnedElsewhereError,
    check_object_owner,
    object_identity,
    same_identity,
)

OURS, THEIRS = "planton.cloud/service-id=a", "planton.cloud/service-id=b"
REPO_A, REPO_B = "https://git.example.com/a.git", "https://git.example.com/b.git"


def test_an_absent_object_and_our_own_may_be_written() -> None:
    check_object_owner(None, OURS)
    check_object_owner(object_identity(OURS, REPO_A), OURS)
    check_object_owner(object_identity(OURS, REPO_A), OURS, repository=REPO_A)
    check_object_owner(object_identity("", REPO_A), "")  # a run without an owner label, again


@pytest.mark.parametrize("metadata,kwargs,says", [
    (object_identity(THEIRS, REPO_A), {}, f"belongs to another owner ({THEIRS})"),
    ({}, {}, "exists without owner metadata"),
    ({"commit": "0" * 40}, {}, "set adopt_unowned_objects"),
    (object_identity(OURS, REPO_B), {"repository": REPO_A}, f"was built from another repository ({REPO_B})"),
    (object_identity("", REPO_A), {}, "belongs to another owner (no owner label)"),
])
def test_what_may_not_be_replaced_says_why(metadata: dict[str, str], kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(ObjectOwnedElsewhereError, match=says.replace("(", r"\(").replace(")", r"\)")):
        check_object_owner(metadata, OURS, **kwargs)


def test_an_unowned_object_is_adopted_only_by_setting_and_another_owners_never() -> None:
    check_object_owner({}, OURS, adopt_unowned=True)
    with pytest.raises(ObjectOwnedElsewhereError):
        check_object_owner(object_identity(THEIRS, REPO_A), OURS, adopt_unowned=True)


def test_an_object_recorded_before_repositories_were_may_be_force_rebuilt_by_its_owner() -> None:
    check_object_owner({"owner": OURS}, OURS, repository=REPO_A)


def test_a_build_is_ours_to_skip_to_only_with_our_owner_and_our_repository() -> None:
    assert same_identity(object_identity(OURS, REPO_A), OURS, REPO_A)
    assert not same_identity(object_identity(OURS, REPO_B), OURS, REPO_A)
    assert not same_identity(object_identity(THEIRS, REPO_A), OURS, REPO_A)
    assert not same_identity({"owner": OURS}, OURS, REPO_A)  # stored before repositories were recorded
