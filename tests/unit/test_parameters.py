"""The parameters' validation: every bad value is refused with an error naming the parameter."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cloudflare_worker_pipeline.parameters import PARAMETER_NAMES, InvalidParameterError, PipelineParameters, dag_params

from tests.helpers import VALID


def validate(allow_file: bool = False, **overrides: Any) -> PipelineParameters:
    conf = {**VALID, **{key.replace("_", "-"): value for key, value in overrides.items()}}
    return PipelineParameters.from_conf(conf, workspace="/tmp/ws", git_schemes=("https", "ssh", "git", "file") if allow_file else ("https", "ssh", "git"))


def rejected(parameter: str, value: Any, **extra: Any) -> str:
    with pytest.raises(InvalidParameterError) as error:
        validate(**{parameter: value}, **extra)
    assert error.value.parameter == parameter
    assert f"Invalid parameter '{parameter}'" in str(error.value)
    return str(error.value)


def test_the_spec_usage_example_is_accepted_with_the_spec_defaults() -> None:
    params = validate(project_root="backend/services/my-worker",
                      owner_identifier_label_key="planton.cloud/service-id", owner_identifier_label_value="svc-abc123")
    assert params.git_revision == "main"
    assert params.kustomize_base_directory == "_kustomize"
    assert params.project_dir.as_posix() == "/tmp/ws/source/backend/services/my-worker"
    assert params.install_dir == params.project_dir  # package-manager-directory "" means the project root
    assert params.labels == {"app.kubernetes.io/managed-by": "planton-cloud", "planton.cloud/service-id": "svc-abc123"}


def test_package_manager_directory_dot_is_the_repository_root() -> None:
    params = validate(project_root="services/api", package_manager_directory=".")
    assert params.install_dir.as_posix() == "/tmp/ws/source"


def test_parameters_round_trip_through_xcom_as_plain_json() -> None:
    params = validate(sparse_checkout_directories="a, b/c", owner_identifier_label_key="k", owner_identifier_label_value="v",
                      project_root="a")
    as_dict = params.to_dict()
    assert as_dict["sparse_checkout_directories"] == ["a", "b/c"] and as_dict["owner_label"] == ["k", "v"]
    assert PipelineParameters.from_dict(as_dict) == params


@pytest.mark.parametrize("name", ["git-url", "r2-bucket-name", "r2-endpoint-url", "r2-object-key",
                                  "worker-script-artifact-config-map-name", "kustomize-manifests-config-map-name"])
def test_required_parameters_must_be_present(name: str) -> None:
    conf = {key: value for key, value in VALID.items() if key != name}
    with pytest.raises(InvalidParameterError, match=f"'{name}'"):
        PipelineParameters.from_conf(conf, workspace="/w")
    assert "required" in rejected(name, "")


def test_unknown_conf_keys_are_refused_so_typos_do_not_build_the_wrong_revision() -> None:
    with pytest.raises(InvalidParameterError, match="'git-revison'"):
        PipelineParameters.from_conf({**VALID, "git-revison": "v2"}, workspace="/w")


@pytest.mark.parametrize("url", [
    "https://github.com/org/repo.git", "ssh://git@github.com/org/repo.git", "git://127.0.0.1:9418/repo.git",
    "git@github.com:org/repo.git", "github.com:org/repo",
])
def test_git_url_accepts_https_ssh_git_and_scp_like(url: str) -> None:
    assert validate(git_url=url).git_url == url


@pytest.mark.parametrize("url", [
    "-uhttps://evil", "--upload-pack=touch /tmp/x", "ext::sh -c touch% /tmp/pwned", "fd::17",
    "http://github.com/org/repo.git", "ftp://host/repo", "file:///srv/repo.git", "/srv/repo.git",
    "https://user:token@github.com/org/repo.git", "https:///nohost", "https://host/repo?x=1",
    "https://host/re po", "not a url", "$(touch /tmp/x)",
])
def test_git_url_refuses_options_helpers_other_schemes_and_credentials(url: str) -> None:
    message = rejected("git-url", url)
    if "token" in url:
        assert "token@" not in message, "a credential in git-url must not be echoed"


def test_file_git_urls_need_the_setting() -> None:
    assert "allow_file_git_urls" in rejected("git-url", "file:///srv/repo.git")
    assert validate(allow_file=True, git_url="file:///srv/repo.git").git_url == "file:///srv/repo.git"
    assert validate(allow_file=True, git_url="/srv/repo.git").git_url == "/srv/repo.git"


@pytest.mark.parametrize("revision", ["main", "release/2024.09", "v1.2.3", "abc1234", "0" * 40, "feature-x_y"])
def test_git_revision_accepts_branches_tags_and_shas(revision: str) -> None:
    assert validate(git_revision=revision).git_revision == revision


@pytest.mark.parametrize("revision", ["-b", "--upload-pack=x", "a..b", "a b", "/main", "main/", "x.lock", "$(id)",
                                      "`id`", "a;b", "a|b", "HEAD~1", "HEAD^", "a:b", "a\nb", "ma\tin"])
def test_git_revision_refuses_options_and_revision_syntax(revision: str) -> None:
    rejected("git-revision", revision)


def test_git_branch_is_optional_and_checked_like_a_ref() -> None:
    assert validate(git_branch="").git_branch == ""
    assert validate(git_branch="release/1.x").git_branch == "release/1.x"
    rejected("git-branch", "--force")


@pytest.mark.parametrize("name", ["project-root", "package-manager-directory", "kustomize-base-directory"])
@pytest.mark.parametrize("path", ["/etc", "../outside", "a/../../b", "a/..", "-rf", "a b", "a;b", "$(id)", "a\\b", "~root"])
def test_paths_must_be_relative_and_stay_inside_the_repository(name: str, path: str) -> None:
    rejected(name, path)


def test_paths_are_normalised() -> None:
    params = validate(project_root="./services/./api/", kustomize_base_directory="deploy/_kustomize")
    assert params.project_root == "services/api"
    assert params.kustomize_dir.as_posix() == "/tmp/ws/source/services/api/deploy/_kustomize"


def test_sparse_checkout_directories_are_split_checked_and_must_hold_the_project() -> None:
    params = validate(sparse_checkout_directories="services/api , packages,,", project_root="services/api")
    assert params.sparse_checkout_directories == ("services/api", "packages")
    rejected("sparse-checkout-directories", "services,../etc")
    rejected("sparse-checkout-directories", "/abs")
    message = rejected("project-root", "services/web", sparse_checkout_directories="services/api")
    assert "sparse-checkout-directories" in message
    rejected("package-manager-directory", "tools", sparse_checkout_directories="services/api", project_root="services/api")


@pytest.mark.parametrize("bucket", ["ab", "UPPER", "under_score", "-start", "end-", "a" * 64, "a..b", "has space"])
def test_bucket_names_follow_r2_rules(bucket: str) -> None:
    rejected("r2-bucket-name", bucket)


@pytest.mark.parametrize("url", ["ftp://host", "host.example", "https://", "https://k:s@host", "https://host/bucket",
                                 "https://host?x=1", "https://host:99999"])
def test_endpoint_url_is_an_http_endpoint_without_credentials_or_path(url: str) -> None:
    rejected("r2-endpoint-url", url)


def test_endpoint_url_trailing_slash_is_dropped() -> None:
    assert validate(r2_endpoint_url="http://127.0.0.1:8333/").r2_endpoint_url == "http://127.0.0.1:8333"


@pytest.mark.parametrize("key", ["/leading.js", "a/../b.js", "../b.js", "a//b.js", "a/./b.js", "x\u0007.js", "a\nb.js",
                                 "k" * 1025])
def test_object_key_has_no_leading_slash_dot_segments_or_control_characters(key: str) -> None:
    rejected("r2-object-key", key)


@pytest.mark.parametrize("name", ["worker-script-artifact-config-map-name", "kustomize-manifests-config-map-name"])
@pytest.mark.parametrize("value", ["Upper", "under_score", "-start", "end-", "a" * 254, "a..b", "sp ace"])
def test_config_map_names_are_dns_1123_subdomains(name: str, value: str) -> None:
    assert "DNS-1123" in rejected(name, value)


def test_owner_label_needs_both_key_and_value() -> None:
    rejected("owner-identifier-label-key", "", owner_identifier_label_value="svc-1")
    rejected("owner-identifier-label-value", "", owner_identifier_label_key="planton.cloud/service-id")
    assert validate().owner_label is None


@pytest.mark.parametrize("key", ["bad key", "-x", "x/", "UPPER.example/x" + "y" * 63, "a/b/c", "app.kubernetes.io/managed-by"])
def test_owner_label_key_is_a_kubernetes_label_key(key: str) -> None:
    rejected("owner-identifier-label-key", key, owner_identifier_label_value="v")


@pytest.mark.parametrize("value", ["has space", "-x", "x-", "v" * 64, "a/b", "$(id)"])
def test_owner_label_value_is_a_kubernetes_label_value(value: str) -> None:
    rejected("owner-identifier-label-value", value, owner_identifier_label_key="planton.cloud/service-id")


def test_values_with_surrounding_whitespace_or_non_strings_are_refused() -> None:
    rejected("git-revision", " main")
    rejected("r2-object-key", 42)


def test_dag_params_describe_every_parameter_for_the_trigger_form() -> None:
    params = dag_params()
    assert tuple(params) == PARAMETER_NAMES
    for name, param in params.items():
        assert param.schema["title"] and param.schema["description_md"], name
        assert param.schema["pattern"] and param.schema["maxLength"], name
        assert param.schema["section"] in {"Source", "Build", "Storage", "Kubernetes metadata"}
    assert params["git-revision"].value == "main" and params["project-root"].value == "."
    assert params["kustomize-base-directory"].value == "_kustomize"
    assert not params["git-url"].has_value  # required: no default


def test_object_key_placeholders_are_accepted_and_filled_with_the_commit() -> None:
    from cloudflare_worker_pipeline.parameters import object_key_for_commit

    params = validate(r2_object_key="my-worker/{commit_sha}.js")
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert object_key_for_commit(params.r2_object_key, commit) == f"my-worker/{commit}.js"
    assert object_key_for_commit("w/{short_sha}.js", commit) == "w/0123456789ab.js"


@pytest.mark.parametrize("key", ["w/{commit}.js", "w/{commit_sha.js", "w/{}.js", "{commit_sha}/../x.js", "/{short_sha}.js",
                                 "w/{commit_sha!r}.js"])
def test_object_key_refuses_other_placeholders_and_keys_bad_once_filled(key: str) -> None:
    rejected("r2-object-key", key)


@pytest.mark.parametrize("key", ["../x.js", "w/../x.js", "w/./x.js", "./x.js", "w//x.js", "w/..", "/x.js", "w/$(id).js"])
def test_the_param_schema_refuses_keys_with_dot_or_empty_segments_so_the_rest_api_answers_400(key: str) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    rejected("r2-object-key", key)
    with pytest.raises(ParamValidationError):
        dag_params()["r2-object-key"].resolve(key)


@pytest.mark.parametrize("key", ["w/{commit_sha}.js", "a..b/x.js", "w/.well-known.js", "x.js", "w/...js", "a/b/c/{short_sha}.js"])
def test_the_param_schema_accepts_keys_the_validator_accepts(key: str) -> None:
    validate(r2_object_key=key)
    assert dag_params()["r2-object-key"].resolve(key) == key


def test_optional_parameters_sent_as_null_by_the_ui_form_take_their_defaults() -> None:
    params = validate(git_revision=None, project_root=None, git_branch=None, owner_identifier_label_key=None,
                      owner_identifier_label_value=None, kustomize_base_directory=None)
    assert (params.git_revision, params.project_root, params.git_branch) == ("main", ".", "")
    assert params.kustomize_base_directory == "_kustomize" and params.owner_label is None
    assert dag_params()["git-branch"].schema["type"] == ["null", "string"]
    assert dag_params()["git-url"].schema["type"] == "string"


@pytest.mark.parametrize("url", [
    "ssh://-oProxyCommand=touch%20/tmp/pwned/repo.git", "ssh://-oProxyCommand=x@host/repo.git",
    "git@-oProxyCommand=x:repo.git", "-oProxyCommand=x@host:repo.git", "https://-host/repo.git",
])
def test_hosts_and_users_starting_with_a_dash_are_refused_in_every_url_form(url: str) -> None:
    rejected("git-url", url)


@pytest.mark.parametrize("key", ["w/$(id).js", "w/a&&b.js", "w/a b.js", "w/a;b.js", "w/a|b.js", "w/`id`.js",
                                 "w/a\\b.js", "w/a%2e.js", "w/ä.js", "w/a?b.js", "w/a#b.js", "w/commit=$(id).js",
                                 "w/a>b.js", "w/a<b.js", "w/a\"b.js", "w/a~b.js", "w/a^b.js", "w/a[b].js"])
def test_object_keys_are_limited_to_s3_safe_characters(key: str) -> None:
    assert "S3's safe characters" in rejected("r2-object-key", key)


@pytest.mark.parametrize("key", ["my-worker/{commit_sha}.js", "w/{short_sha}/index.js", "a!b_c.d*e'f(g)h-i/x.js",
                                 # S3 and R2 accept these, and none means anything to a shell (issue 21)
                                 "builds/commit={commit_sha}/worker.mjs", "w/v1+build.js", "w/a,b.js", "team@v2/x.js"])
def test_object_keys_with_safe_characters_and_placeholders_are_accepted(key: str) -> None:
    assert validate(r2_object_key=key).r2_object_key == key


@pytest.mark.parametrize("name", ["worker-script-artifact-config-map-name", "kustomize-manifests-config-map-name"])
@pytest.mark.parametrize("value", ["kube-root-ca.crt", "kube-proxy"])
def test_config_map_names_of_kubernetes_itself_are_refused(name: str, value: str) -> None:
    assert "kube-" in rejected(name, value)


def schema_refuses(name: str, value: str) -> bool:
    """Does the DAG's JSON schema (what the REST API checks, answering 400) refuse ``value``?"""
    from airflow.sdk.exceptions import ParamValidationError

    param = dag_params()[name]
    try:
        param.resolve(value)
    except ParamValidationError:
        return True
    return False


@pytest.mark.parametrize("name,value", [
    ("r2-bucket-name", "Bad_Bucket!"), ("r2-object-key", "w/$(id).js"), ("r2-object-key", "w/a b.js"),
    ("r2-object-key", "/w.js"), ("worker-script-artifact-config-map-name", "Not_A_Name"),
    ("kustomize-manifests-config-map-name", "kube-root-ca.crt"), ("git-url", "-oProxyCommand=x"),
    ("git-url", "https://h/$(id)"), ("git-revision", "--upload-pack=x"), ("project-root", "/etc"),
    ("r2-endpoint-url", "https://host/path"), ("owner-identifier-label-value", "-bad-"), ("r2-bucket-name", "a" * 64),
])
def test_the_trigger_schema_refuses_what_validation_refuses(name: str, value: str) -> None:
    assert schema_refuses(name, value), f"the REST API would accept {name}={value!r}"
    extra = {"owner_identifier_label_key": "k"} if name == "owner-identifier-label-value" else {}
    rejected(name, value, **extra)


@pytest.mark.parametrize("name,value", [
    ("git-url", "git@github.com:org/repo.git"), ("git-url", "ssh://git@host:2222/org/repo.git"),
    ("git-revision", "release/2024.09"), ("r2-object-key", "my-worker/{commit_sha}.js"),
    ("r2-endpoint-url", "https://074755a78d8e8f77c119a90a125e8a06.r2.cloudflarestorage.com"),
    ("r2-endpoint-url", "http://127.0.0.1:8333"), ("owner-identifier-label-key", "planton.cloud/service-id"),
    ("sparse-checkout-directories", "services/api, packages"), ("project-root", "backend/services/my-worker"),
])
def test_the_trigger_schema_accepts_valid_values(name: str, value: str) -> None:
    assert not schema_refuses(name, value)


def test_the_readme_parameter_table_is_the_spec() -> None:
    from cloudflare_worker_pipeline.parameter_specs import SPECS

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[2].strip()
            for line in readme.split("## Parameters", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("| `")}
    assert list(rows) == [spec.name for spec in SPECS]
    for spec in SPECS:
        assert rows[spec.name] == ("*required*" if spec.required else f"`{spec.default}`" if spec.default else '`""`')


def test_plain_http_git_urls_need_their_setting() -> None:
    from cloudflare_worker_pipeline.parameter_urls import SAFE_GIT_SCHEMES

    url = "http://git.internal.example/team/worker.git"
    with pytest.raises(InvalidParameterError, match=r"http:// needs the allow_http_git_urls setting"):
        PipelineParameters.from_conf({**VALID, "git-url": url}, workspace="/w")
    allowed = PipelineParameters.from_conf({**VALID, "git-url": url}, workspace="/w",
                                           git_schemes=(*SAFE_GIT_SCHEMES, "http"))
    assert allowed.git_url == url


def worker(root: str = "services/b", key: str = "b/{commit_sha}.js", config_map: str = "b-artifact") -> dict[str, str]:
    return {"project-root": root, "r2-object-key": key, "worker-script-artifact-config-map-name": config_map}


def with_workers(*entries: Any, **overrides: Any) -> PipelineParameters:
    return validate(project_root="services/a", package_manager_directory=".", additional_workers=json.dumps(entries),
                    **overrides)


def test_additional_workers_are_the_runs_workers_after_the_top_level_one() -> None:
    params = with_workers(worker(), worker("services/c", "c/{short_sha}.js", "c-artifact"))
    assert [w["index"] for w in params.workers] == [0, 1, 2]
    assert params.workers[0] == {"index": 0, "project_root": "services/a", "r2_object_key": VALID["r2-object-key"],
                                 "worker_script_artifact_config_map_name": VALID["worker-script-artifact-config-map-name"]}
    second = params.for_worker(params.workers[2])
    assert (second.project_dir.as_posix(), second.r2_object_key, second.worker_script_artifact_config_map_name) == (
        "/tmp/ws/source/services/c", "c/{short_sha}.js", "c-artifact")
    assert second.install_dir == params.install_dir, "one install serves every worker"
    assert PipelineParameters.from_dict(params.to_dict()) == params
    assert validate().workers == [validate().workers[0]], "a single-worker run has one worker"


@pytest.mark.parametrize("value,parameter,expected", [
    ("not json", "additional-workers", "a JSON array of objects"),
    ('{"project-root": "x"}', "additional-workers", "a JSON array of objects"),
    (json.dumps([worker()] * 17), "additional-workers", "at most 16 workers"),
    (json.dumps([{"project-root": "services/b"}]), "additional-workers[1]", "exactly the string keys"),
    (json.dumps([{**worker(), "git-url": "https://evil.example/x.git"}]), "additional-workers[1]", "exactly the string keys"),
    (json.dumps([worker(root="../escape")]), "additional-workers[1].project-root", "stays inside the repository"),
    (json.dumps([worker(key="/b.js")]), "additional-workers[1].r2-object-key", "without a leading '/'"),
    (json.dumps([worker(config_map="kube-proxy")]), "additional-workers[1].worker-script-artifact-config-map-name",
     "not starting with 'kube-'"),
    (json.dumps([worker(), worker(key="c.js", config_map="c")]), "additional-workers[2].project-root",
     "other than additional-workers[1].project-root's"),
    (json.dumps([worker(root="services/a")]), "additional-workers[1].project-root", "other than project-root's"),
    (json.dumps([worker(config_map="my-worker-manifests")]), "additional-workers[1].worker-script-artifact-config-map-name",
     "other than kustomize-manifests-config-map-name's"),
    (json.dumps([worker(key="my-worker/abc123def456.js.map")]), "additional-workers[1].r2-object-key",
     "neither extends nor is extended by r2-object-key"),
])
def test_bad_additional_workers_are_refused_naming_the_entry_and_its_key(value: str, parameter: str,
                                                                         expected: str) -> None:
    with pytest.raises(InvalidParameterError, match=re.escape(expected)) as error:
        validate(project_root="services/a", package_manager_directory=".", additional_workers=value)
    assert error.value.parameter == parameter


def test_an_additional_worker_must_be_served_by_the_one_install_and_the_sparse_checkout() -> None:
    with pytest.raises(InvalidParameterError, match=r"inside package-manager-directory \(services/a\)") as error:
        validate(project_root="services/a", additional_workers=json.dumps([worker()]))
    assert error.value.parameter == "additional-workers[1].project-root"
    with pytest.raises(InvalidParameterError, match="inside one of sparse-checkout-directories") as error:
        with_workers(worker(), sparse_checkout_directories="services/a")
    assert error.value.parameter == "additional-workers[1].project-root"


def test_each_worker_fingerprints_its_root_and_the_install_directory_without_the_other_workers() -> None:
    from cloudflare_worker_pipeline.fingerprint import input_directories, run_input_directories

    params = with_workers(worker(), worker("tools", "t.js", "t-artifact"))
    assert input_directories(params, params.workers[0]) == [".:services/b:tools", "services/a"]
    assert input_directories(params, params.workers[1]) == [".:services/a:tools", "services/b"]
    assert run_input_directories(params) == [".:services/a:services/b", ".:services/a:tools", ".:services/b:tools",
                                             "services/a", "services/b", "tools"]
    assert input_directories(validate(project_root="services/a")) == ["services/a"], "a single worker as before"
