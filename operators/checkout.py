"""Stage 1: the git checkout."""

from __future__ import annotations

from typing import Any

from operators.links import CommitLink
from operators.stage import StageOperator


class CheckoutOperator(StageOperator):
    """Clone ``git-url`` at ``git-revision`` into a fresh workspace; return the commit SHA.

    Branches, tags and full SHAs are fetched one commit deep; short SHAs need the refs' history.
    Sparse checkout uses cone mode, so files at the repository root are always present.
    """

    operator_extra_links = (CommitLink(),)

    def execute(self, context: Any) -> dict[str, str]:
        p = self.pipeline
        protocols = "https:ssh:git" + (":file" if self.settings.allow_file_git_urls else "")
        results = self.run_script(
            "checkout.sh",
            {
                "GIT_URL": p.git_url,
                "GIT_REVISION": p.git_revision,
                "GIT_BRANCH": p.git_branch,
                "SPARSE_CHECKOUT_DIRECTORIES": "\n".join(p.sparse_checkout_directories),
                "CHECKOUT_DIR": str(p.checkout_dir),
                "GIT_ALLOW_PROTOCOL": protocols,
            },
        )
        return {"commit_sha": results["commit"]}
