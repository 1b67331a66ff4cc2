"""Property-based tests of every parameter through the real validation (hypothesis).

Each parameter gets generators of bad values (shell metacharacters and command substitutions,
option-like values, ``..`` and absolute paths, control and non-ASCII characters, overlong and
empty strings, invalid DNS and label syntax) and of valid ones. Every bad value must be refused
with an error naming that parameter; every valid one accepted. A sample of the bad values then
goes through the whole DAG, which must leave nothing in the bucket, no ConfigMap and no workspace.
"""

from __future__ import annotations

import json
import string
from collections import Counter

import pytest
from cloudflare_worker_pipeline.parameters import InvalidParameterError, PipelineParameters
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers import VALID

TRIED: Counter[str] = Counter()  # bad values tried per parameter, reported in the README
MARKER = "/tmp/cfw-injection-marker"

SHELL = st.sampled_from([f"$(touch {MARKER})", f"`touch {MARKER}`", f";touch {MARKER}", f"|touch {MARKER}",
                         f"&&touch {MARKER}", "$HOME", "${IFS}", "'quoted'", '"dq"', "a b", "*", "x>y", "<z"])
CONTROL = st.characters(min_codepoint=0, max_codepoint=31) | st.just("\x7f")
NON_ASCII = st.characters(min_codepoint=0x80, max_codepoint=0x2FFF, exclude_categories=("Cs",))
SAFE = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)


def around(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``core`` somewhere inside otherwise ordinary text (never leading/trailing whitespace alone)."""
    return st.builds(lambda a, c, b: a + c + b, SAFE, core, SAFE)


CONTROLLED = around(CONTROL)
OVERLONG = st.integers(2049, 4000).map(lambda n: "a" * n)
OPTION_LIKE = st.builds(lambda s: "-" + s, SAFE) | st.builds(lambda s: "--" + s + "=x", SAFE)
PATH_ESCAPE = (st.builds(lambda s: "/" + s, SAFE) | st.builds(lambda s: "../" + s, SAFE)
               | st.builds(lambda s: s + "/../../" + s, SAFE) | st.just(".."))
COMMON_BAD = CONTROLLED | OVERLONG
FLAG_BAD = st.sampled_from(["yes", "True", "1", "on", "false ", "TRUE"]) | around(SHELL) | CONTROLLED
# Not JSON, not an array, or an array of something other than strings.
JSON_BAD = (st.sampled_from(["--minify", "[", '{"a": 1}', "[1, 2]", '["a", null]', "[[]]", '"npm"'])
            | around(SHELL) | CONTROLLED.map(lambda s: json.dumps([s])))

BAD: dict[str, st.SearchStrategy[str]] = {
    "git-url": (COMMON_BAD | OPTION_LIKE | around(SHELL).map(lambda s: f"https://host/{s}")
                | st.builds(lambda s: f"ext::sh -c {s}", SAFE) | st.builds(lambda s: f"file:///{s}", SAFE)
                | st.builds(lambda s: f"ftp://{s}/r.git", SAFE) | st.builds(lambda s: f"https://u:{s}@h/r.git", SAFE)
                | st.just("")),
    "git-revision": (COMMON_BAD | OPTION_LIKE | around(SHELL) | around(NON_ASCII) | around(st.just(".."))
                     | st.just("") | st.integers(256, 400).map(lambda n: "r" * n)),
    "git-branch": COMMON_BAD | OPTION_LIKE | around(SHELL) | around(NON_ASCII) | around(st.just("..")),
    "project-root": COMMON_BAD | OPTION_LIKE | PATH_ESCAPE | around(SHELL) | around(NON_ASCII),
    "package-manager-directory": COMMON_BAD | OPTION_LIKE | PATH_ESCAPE | around(SHELL) | around(NON_ASCII),
    "kustomize-base-directory": COMMON_BAD | OPTION_LIKE | PATH_ESCAPE | around(SHELL) | around(NON_ASCII),
    "sparse-checkout-directories": COMMON_BAD | OPTION_LIKE | PATH_ESCAPE | around(SHELL) | around(NON_ASCII),
    "r2-bucket-name": (COMMON_BAD | around(SHELL) | around(NON_ASCII) | st.just("") | st.just("ab")
                       | st.builds(lambda s: s.upper() + "X", SAFE) | st.builds(lambda s: s + "_x", SAFE)
                       | st.integers(64, 100).map(lambda n: "b" * n) | OPTION_LIKE),
    "r2-endpoint-url": (COMMON_BAD | st.just("") | SAFE | st.builds(lambda s: f"ftp://{s}", SAFE)
                        | st.builds(lambda s: f"https://k:{s}@host", SAFE) | st.builds(lambda s: f"https://host/{s}", SAFE)
                        | around(SHELL).map(lambda s: f"https://{s}")),
    "r2-object-key": (CONTROLLED | st.just("") | st.builds(lambda s: "/" + s, SAFE)
                      | st.builds(lambda s: f"{s}/../{s}.js", SAFE) | st.builds(lambda s: f"{s}//{s}.js", SAFE)
                      | st.integers(1025, 2048).map(lambda n: "k" * n) | st.builds(lambda s: "{" + s + "}", SAFE)),
    "worker-script-artifact-config-map-name": (COMMON_BAD | around(SHELL) | around(NON_ASCII) | st.just("") | OPTION_LIKE
                                               | st.builds(lambda s: s + "_X", SAFE)
                                               | st.integers(254, 300).map(lambda n: "c" * n)),
    "kustomize-manifests-config-map-name": (COMMON_BAD | around(SHELL) | around(NON_ASCII) | st.just("") | OPTION_LIKE
                                            | st.builds(lambda s: s + ".", SAFE)),
    "owner-identifier-label-key": COMMON_BAD | around(SHELL) | around(NON_ASCII) | OPTION_LIKE | st.just("a/b/c"),
    "owner-identifier-label-value": (COMMON_BAD | around(SHELL) | around(NON_ASCII) | OPTION_LIKE
                                     | st.integers(64, 100).map(lambda n: "v" * n)),
    "force-rebuild": FLAG_BAD,
    "upload-source-maps": FLAG_BAD,
    "reproducibility-check": FLAG_BAD,
    "bundle-size-limit-bytes": (COMMON_BAD | around(SHELL) | OPTION_LIKE | st.just("0") | st.just("10MB") | st.just("1e6")
                                | st.just("٣") | st.integers(-10**9, -1).map(str) | st.floats(0.1, 1e6).map(str)),
    "bundle-size-limit-applies-to": st.sampled_from(["brotli", "RAW", "Gzip", " raw", "raw;id"]) | around(SHELL),
    "typescript-check": st.sampled_from(["maybe", "ON", "yes", "1", "off "]) | around(SHELL),
    "node-version": (around(SHELL) | OPTION_LIKE | st.sampled_from(["v20", "20.x", "lts/*", "node", "1.2.3.4", "20..1"])
                     | st.integers(10**4, 10**6).map(str)),
    "wrangler-extra-args": JSON_BAD | st.sampled_from([  # the pipeline's own flags, deploying ones, options as values
        '["--outdir", "/tmp"]', '["--config", "x.toml"]', '["--dry-run"]', '["--routes", "x.com/*"]',
        '["--secrets-file", "s.env"]', '["--minify=yes"]', '["--env"]', '["--env", "--minify"]',
        '["--tsconfig", "/etc/tsconfig.json"]', '["--tsconfig", "../../t.json"]']) | around(SHELL).map(
        lambda s: json.dumps([s])),
    "build-command": JSON_BAD | st.sampled_from([
        '["/bin/sh", "-c", "id"]', '["./build.sh"]', '["-x"]', '["../bin/x"]', '[""]', '["npm", "a\\u0000b"]'])
                     | around(SHELL).map(lambda s: json.dumps([s])),
    "additional-workers": JSON_BAD | st.sampled_from([
        '{"project-root": "b"}', '[{"project-root": "../b", "r2-object-key": "b.js", '
        '"worker-script-artifact-config-map-name": "b-artifact"}]', '[{"project-root": "b"}]',
        '[{"project-root": "b", "r2-object-key": "b/$(id).js", "worker-script-artifact-config-map-name": "b-artifact"}]',
        '[{"project-root": "b", "r2-object-key": "b.js", "worker-script-artifact-config-map-name": "B_Artifact"}]',
        '[{"project-root": "b", "r2-object-key": "b.js", "worker-script-artifact-config-map-name": "b", "x": 1}]']),
}

GOOD: dict[str, st.SearchStrategy[str]] = {
    "git-url": st.builds(lambda h, p: f"https://{h}.example/{p}.git", SAFE, SAFE)
    | st.builds(lambda h, p: f"git@{h}.example:org/{p}.git", SAFE, SAFE),
    "git-revision": st.from_regex(r"\A[a-z0-9][a-z0-9._/-]{0,30}[a-z0-9]\Z").filter(lambda v: ".." not in v and "//" not in v
                                                                                   and not v.endswith(".lock")),
    "project-root": st.lists(SAFE, min_size=1, max_size=4).map("/".join),
    "kustomize-base-directory": st.lists(SAFE, min_size=1, max_size=3).map("/".join),
    "r2-bucket-name": st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,40}[a-z0-9]\Z"),
    "r2-object-key": st.lists(SAFE, min_size=1, max_size=4).map(lambda parts: "/".join(parts) + "/{commit_sha}.js"),
    "worker-script-artifact-config-map-name": st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?(\.[a-z0-9]{1,10})?\Z"),
}


def conf_with(name: str, value: str) -> dict[str, str]:
    conf = {**VALID, name: value}
    if name == "owner-identifier-label-key":
        conf["owner-identifier-label-value"] = "svc-1"
    if name == "owner-identifier-label-value":
        conf["owner-identifier-label-key"] = "planton.cloud/service-id"
    return conf


BAD_CASES = st.sampled_from(sorted(BAD)).flatmap(lambda name: st.tuples(st.just(name), BAD[name]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=BAD_CASES)
@example(case=("r2-endpoint-url", "https://0$HOME0"))  # found by hypothesis: a '$' in the endpoint's host
def test_every_bad_value_is_refused_naming_its_parameter(case: tuple[str, str]) -> None:
    name, value = case
    TRIED[name] += 1
    with pytest.raises(InvalidParameterError) as error:
        PipelineParameters.from_conf(conf_with(name, value), workspace="/w")
    blamed = error.value.parameter  # an additional worker's field is named within it: additional-workers[1].r2-object-key
    assert blamed == name or blamed.startswith(f"{name}["), f"{value!r} for {name} was blamed on {blamed}"


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from(sorted(GOOD)).flatmap(lambda name: st.tuples(st.just(name), GOOD[name])))
def test_valid_values_from_the_same_generators_are_accepted(case: tuple[str, str]) -> None:
    name, value = case
    PipelineParameters.from_conf(conf_with(name, value), workspace="/w")


def test_every_parameter_of_the_table_has_bad_values() -> None:
    """A new parameter cannot be left out: the generators' keys are the parameter table's names."""
    from cloudflare_worker_pipeline.parameters import PARAMETER_NAMES

    assert set(BAD) == set(PARAMETER_NAMES), f"no bad values for {set(PARAMETER_NAMES) - set(BAD)}"


def test_at_least_500_bad_values_were_tried_across_every_parameter() -> None:
    test_every_bad_value_is_refused_naming_its_parameter()
    assert sum(TRIED.values()) >= 500
    assert set(TRIED) == set(BAD), f"parameters never tried: {set(BAD) - set(TRIED)}"
    print(f"bad values tried: {sum(TRIED.values())} across {len(TRIED)} parameters: {dict(TRIED)}")


def test_bad_values_through_the_whole_dag_leave_nothing_behind(pipeline_dag, git_server, connections, bucket, s3_server,
                                                               s3_client, workspaces) -> None:
    """A sample of the bad values, each through dag.test(): nothing cloned, uploaded or written."""
    import os

    from examples.local_stack.dag_run import run_pipeline
    from tests.helpers import conf_for, objects_in

    repo = git_server.publish("bad-values", __import__("tests.conftest").conftest.REPO / "examples" / "hello-worker")
    base = conf_for(repo.url, bucket, s3_server.endpoint_url)
    before = set(workspaces.glob("*/*")) if workspaces.exists() else set()
    runs = 0

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=BAD_CASES.filter(lambda case: len(case[1]) < 300))
    def run_one(case: tuple[str, str]) -> None:
        nonlocal runs
        name, value = case
        conf = {**base, **{k: v for k, v in conf_with(name, value).items() if k in (name, "owner-identifier-label-key",
                                                                                      "owner-identifier-label-value")}}
        from airflow.sdk.exceptions import ParamValidationError

        runs += 1
        try:
            run = run_pipeline(pipeline_dag, conf)
        except ParamValidationError as error:  # the DAG's schema refused it before any task ran
            assert name in str(error)
        else:
            assert run.task_states["setup"] == "failed", (name, value)
            assert run.task_states["checkout"] == "upstream_failed"
        assert objects_in(s3_client, bucket) == {}
        assert connections.objects() == {}
        assert (set(workspaces.glob("*/*")) if workspaces.exists() else set()) == before
        assert not os.path.exists(MARKER)

    run_one()
    assert runs >= 10
