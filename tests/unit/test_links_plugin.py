"""The plugin's extra links: registered with Airflow, and pointing where a reader expects."""

from __future__ import annotations

import pytest
from cloudflare_worker_pipeline.links import commit_url, object_url


@pytest.mark.parametrize("git_url,expected", [
    ("https://github.com/org/repo.git", "https://github.com/org/repo/commit/abc"),
    ("https://gitlab.example.com/group/sub/repo", "https://gitlab.example.com/group/sub/repo/commit/abc"),
    ("git@github.com:org/repo.git", "https://github.com/org/repo/commit/abc"),
    ("ssh://git@github.com/org/repo.git", "https://github.com/org/repo/commit/abc"),
    ("git://127.0.0.1:9418/repo.git", ""),
    ("file:///srv/repo.git", ""),
])
def test_commit_links_follow_the_git_host(git_url: str, expected: str) -> None:
    assert commit_url(git_url, "abc") == expected


def test_r2_endpoints_link_to_the_cloudflare_dashboard() -> None:
    account = "074755a78d8e8f77c119a90a125e8a06"
    assert object_url(f"https://{account}.r2.cloudflarestorage.com", "scripts", "my-worker/abc.js") == (
        f"https://dash.cloudflare.com/{account}/r2/default/buckets/scripts/objects/my-worker%2Fabc.js/details")
    assert object_url("http://127.0.0.1:8333", "scripts", "w/a.js") == "http://127.0.0.1:8333/scripts/w/a.js"


def test_the_plugin_registers_both_links_with_airflow() -> None:
    from airflow import plugins_manager

    assert plugins_manager.get_import_errors() == {}
    names = sorted(type(link).__name__ for link in plugins_manager.get_operator_extra_links())
    assert {"CommitLink", "R2ObjectLink"} <= set(names)
