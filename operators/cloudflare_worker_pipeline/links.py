"""Extra links in the Airflow UI: the commit a run built, and the object it uploaded.

Airflow 3 computes a link when the task finishes, on the worker, and stores it as an XCom; the
links read the task's own result, so they appear only for tasks that succeeded.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")
_R2_ENDPOINT = re.compile(r"^(?P<account>[0-9a-f]{32})\.(?:[a-z]+\.)?r2\.cloudflarestorage\.com$")


def _result_of(ti_key: Any, task_id: str | None = None, key: str = "return_value") -> dict[str, Any]:
    """A task's XCom (its return value by default) in the same run (default: the task the link is on)."""
    from airflow.sdk.execution_time.xcom import XCom

    value = XCom.get_one(key=key, dag_id=ti_key.dag_id, task_id=task_id or ti_key.task_id,
                         run_id=ti_key.run_id, map_index=ti_key.map_index if task_id is None else -1)
    return value if isinstance(value, dict) else {}


def commit_url(git_url: str, commit: str) -> str:
    """GitHub/GitLab/Gitea-style commit page for https, ssh and scp-like URLs; '' when unknown."""
    if "://" in git_url:
        parts = urlsplit(git_url)
        if parts.scheme not in ("https", "ssh") or not parts.hostname:
            return ""
        host, path = parts.hostname, parts.path
    else:
        match = _SCP_LIKE.match(git_url)
        if not match:
            return ""
        host, path = match["host"], match["path"]
    path = path.strip("/").removesuffix(".git")
    return f"https://{host}/{path}/commit/{commit}" if path else ""


def object_url(endpoint_url: str, bucket: str, key: str) -> str:
    """The object in Cloudflare's dashboard for an R2 endpoint, else its S3 URL."""
    match = _R2_ENDPOINT.match(urlsplit(endpoint_url).hostname or "")
    if match:
        return (f"https://dash.cloudflare.com/{match['account']}/r2/default/buckets/{bucket}"
                f"/objects/{quote(key, safe='')}/details")
    return f"{endpoint_url}/{bucket}/{key}"


class CommitLink(BaseOperatorLink):
    """On the checkout task: the commit that was built, on the git host."""

    name = "Commit"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        commit = _result_of(ti_key).get("commit_sha", "")
        git_url = _result_of(ti_key, "setup", "parameters").get("git_url", "")
        return commit_url(git_url, commit) if commit and git_url else ""


class R2ObjectLink(BaseOperatorLink):
    """On upload and publish: the bundle's object (Cloudflare dashboard for R2 endpoints); publish
    has it also when the upload was skipped."""

    name = "R2 object"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        result = _result_of(ti_key)
        result = result.get("artifact") or result  # publish's result holds the object as "artifact"
        if not result.get("artifact_url"):
            return ""
        endpoint = result["artifact_url"].removesuffix(f"/{result['bucket']}/{result['key']}")
        return object_url(endpoint, result["bucket"], result["key"])

