"""The fingerprint on its own: every parameter that decides a build is hashed, and a bundle's
inputs outside the hashed trees are named (:mod:`cloudflare_worker_pipeline.fingerprint`)."""

from __future__ import annotations

import json

import pytest
from cloudflare_worker_pipeline.fingerprint import UNHASHED_PARAMETERS, bundle_fingerprint, inputs_outside
from cloudflare_worker_pipeline.parameters import PARAMETER_NAMES, PipelineParameters
from cloudflare_worker_pipeline.settings import PipelineSettings

from tests.helpers import VALID

TREES = ".=" + "a" * 40 + "\nservices/api=" + "b" * 40
CHANGED = {  # a second valid value for every hashed parameter
    "git-url": "https://github.com/org/twin.git",
    "sparse-checkout-directories": "services",
    "project-root": "services/api",
    "package-manager-directory": "services",
    "owner-identifier-label-key": "squad",
    "owner-identifier-label-value": "b",
    "upload-source-maps": "false",
    "bundle-size-limit-bytes": "1000",
    "bundle-size-limit-applies-to": "gzip",
    "typescript-check": "off",
    "reproducibility-check": "true",
    "wrangler-extra-args": '["--minify"]',
    "build-command": '["npm", "run", "build"]',
}
BASE = {**VALID, "owner-identifier-label-key": "team", "owner-identifier-label-value": "a"}


def fingerprint(conf: dict[str, str]) -> str:
    p = PipelineParameters.from_conf(conf, workspace="/w")
    return bundle_fingerprint(p, p.workers[0], PipelineSettings.from_airflow_config(), TREES)


def test_every_parameter_is_hashed_or_says_why_not() -> None:
    assert set(CHANGED) | set(UNHASHED_PARAMETERS) == set(PARAMETER_NAMES), "a parameter the fingerprint forgot"
    assert not set(CHANGED) & set(UNHASHED_PARAMETERS)


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_changing_a_hashed_parameter_changes_the_fingerprint(name: str) -> None:
    assert fingerprint({**BASE, name: CHANGED[name]}) != fingerprint(BASE)


@pytest.mark.parametrize("name,value", [("r2-object-key", "other/{commit_sha}.js"), ("git-branch", "release"),
                                        ("force-rebuild", "true"), ("kustomize-base-directory", "deploy")])
def test_where_a_build_goes_does_not_change_what_it_is(name: str, value: str) -> None:
    assert fingerprint({**BASE, name: value}) == fingerprint(BASE)


def test_inputs_outside_the_hashed_trees_are_named_and_packages_and_virtual_modules_are_not() -> None:
    workers = [{"project-root": "services/cron", "r2-object-key": "cron.js", "worker-script-artifact-config-map-name": "cron"}]
    p = PipelineParameters.from_conf({**BASE, "project-root": "services/api", "package-manager-directory": "services",
                                      "additional-workers": json.dumps(workers)}, workspace="/w")
    listing = "\n".join([
        "src/index.ts",  # the project root
        "../package.json",  # the install directory
        "../node_modules/hono/dist/index.js",  # a package: the lockfile covers it
        "../cron/src/shared.ts",  # another worker's root: excluded from this worker's install tree
        "../../libs/greeting.ts",  # outside both
        "<define:__VERSION__>", "wrangler:modules-watch", "\0virtual",  # esbuild's virtual modules
        "../../../etc/hosts",  # outside the clone: not the repository's
    ])
    assert inputs_outside(listing, p, p.workers[0]) == ["libs/greeting.ts", "services/cron/src/shared.ts"]
    assert inputs_outside("src/index.ts\n", p, p.workers[0]) == []
