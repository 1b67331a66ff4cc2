"""Where the files beside a bundle go, the manifest that lists them, and what the bundle stage's
listing may hold (a hostile project names its own files)."""

from __future__ import annotations

import hashlib

import pytest
from airflow.sdk.exceptions import AirflowFailException
from cloudflare_worker_pipeline.operators.bundle import check_worker_size, parse_durable_objects, parse_files
from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.results import BuildFile, UploadedFile
from cloudflare_worker_pipeline.worker_files import content_type, file_key, manifest_body, parse_manifest

from tests.helpers import VALID

SHA = "a" * 64


def _file(name: str, kind: str = "module", size: int = 10, gzip: int = 5) -> BuildFile:
    return BuildFile(name=name, kind=kind, sha256=SHA, size_bytes=size, gzip_bytes=gzip)


def test_modules_go_beside_the_bundle_and_the_source_map_after_its_key() -> None:
    assert file_key("team/w/build.js", _file("c600-add.wasm")) == "team/w/c600-add.wasm"
    assert file_key("build.js", _file("c600-add.wasm")) == "c600-add.wasm"
    assert file_key("team/w/build.js", _file("index.js.map", "source-map")) == "team/w/build.js.map"
    assert content_type("c600-add.wasm") == "application/wasm" and content_type("x.map") == "application/json"
    assert content_type("c600-data.bin") == "application/octet-stream"


def test_a_manifest_is_read_back_only_when_it_is_the_one_the_bundle_names() -> None:
    files = [UploadedFile(key="w/b.txt", kind="module", sha256=SHA, size_bytes=3),
             UploadedFile(key="w/a.wasm", kind="module", sha256=SHA, size_bytes=8)]
    body = manifest_body(files)
    assert body == manifest_body(list(reversed(files))), "the same files, the same bytes"
    assert parse_manifest(body, hashlib.sha256(body).hexdigest()) == sorted(files, key=lambda f: f["key"])
    tampered = body.replace(b"w/a.wasm", b"w/z.wasm")
    assert parse_manifest(tampered, hashlib.sha256(body).hexdigest()) is None
    assert parse_manifest(b"{}", hashlib.sha256(b"{}").hexdigest()) is None


def test_the_listing_names_modules_and_the_source_map() -> None:
    listing = f"{SHA} 8 28 c600-add.wasm\n{SHA} 648 300 index.js.map\n"
    assert parse_files(listing, "index.js") == [_file("c600-add.wasm", size=8, gzip=28),
                                                _file("index.js.map", "source-map", size=648, gzip=300)]
    assert parse_files("", "index.js") == []


@pytest.mark.parametrize("name", ["../escape.wasm", "sub/dir.txt", ".hidden", "a b.txt", "x\ty", "$(id).txt", ""])
def test_a_file_name_that_cannot_be_stored_beside_the_bundle_fails_the_stage(name: str) -> None:
    with pytest.raises(AirflowFailException, match="cannot be stored beside the bundle"):
        parse_files(f"{SHA} 1 1 {name}\n", "index.js")


def test_the_run_limit_counts_the_bundle_and_its_modules_raw_or_gzipped_but_not_the_map() -> None:
    modules = [_file("m.wasm", size=400, gzip=100), _file("index.js.map", "source-map", size=10_000, gzip=5_000)]
    raw = PipelineParameters.from_conf({**VALID, "bundle-size-limit-bytes": "1000"}, workspace="/w")
    check_worker_size(raw, "dist/index.js", 600, 200, modules)  # 600 + 400 = 1000: at the limit
    with pytest.raises(AirflowFailException, match=r"dist/index.js and 1 module\(s\) are 1001 bytes, over the limit "
                                                   r"of 1000 bytes \(parameter bundle-size-limit-bytes, measured raw"):
        check_worker_size(raw, "dist/index.js", 601, 200, modules)
    gzip = PipelineParameters.from_conf({**VALID, "bundle-size-limit-bytes": "300",
                                         "bundle-size-limit-applies-to": "gzip"}, workspace="/w")
    check_worker_size(gzip, "dist/index.js", 5_000, 200, modules)
    with pytest.raises(AirflowFailException, match="are 301 bytes gzipped"):
        check_worker_size(gzip, "dist/index.js", 5_000, 201, modules)


def test_the_report_keeps_only_well_formed_rows() -> None:
    from cloudflare_worker_pipeline.operators.bundle import parse_report

    assert parse_report('[{"input": "src/index.ts", "bytes": 120}, {"input": 5}, "x"]') == [
        {"input": "src/index.ts", "bytes": 120}]
    assert parse_report("not json") == [] and parse_report("{}") == []


def test_durable_objects_are_taken_only_in_the_shape_the_stage_writes() -> None:
    assert parse_durable_objects("null") is None and parse_durable_objects("not json") is None
    assert parse_durable_objects('{"bindings": {}, "migrations": []}') is None
    assert parse_durable_objects('{"bindings": [], "migrations": []}') == {"bindings": [], "migrations": []}


@pytest.mark.parametrize("conf,parameter", [
    ({"bundle-size-limit-bytes": "0"}, "bundle-size-limit-bytes"),
    ({"bundle-size-limit-bytes": "10MB"}, "bundle-size-limit-bytes"),
    ({"bundle-size-limit-applies-to": "brotli"}, "bundle-size-limit-applies-to"),
    ({"upload-source-maps": "yes"}, "upload-source-maps"),
])
def test_the_new_build_parameters_are_validated_naming_them(conf: dict[str, str], parameter: str) -> None:
    from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=f"Invalid parameter '{parameter}'"):
        PipelineParameters.from_conf({**VALID, **conf}, workspace="/w")


@pytest.mark.parametrize("value,expected", [
    ('["--minify", "--env", "staging"]', ("--minify", "--env", "staging")),
    ('["--env=staging", "--define", "VERSION:\\"1.0\\""]', ("--env", "staging", "--define", 'VERSION:"1.0"')),
    ("[]", ()),
])
def test_wrangler_extra_args_become_one_argument_each(value: str, expected: tuple[str, ...]) -> None:
    assert PipelineParameters.from_conf({**VALID, "wrangler-extra-args": value}, workspace="/w").wrangler_extra_args == expected


@pytest.mark.parametrize("value", [
    '["--outdir", "/tmp/x"]', '["--config=/etc/passwd"]', '["--routes", "example.com/*"]', '["--secrets-file", "s"]',
    '["--env"]', '["--env", "--minify"]', '["--minify=yes"]', '["--tsconfig", "../../tsconfig.json"]',
    '["--name", "a\\nb"]', '"--minify"', '[1]', "--minify",
])
def test_wrangler_extra_args_outside_the_allowlist_are_refused_naming_the_parameter(value: str) -> None:
    from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="Invalid parameter 'wrangler-extra-args'"):
        PipelineParameters.from_conf({**VALID, "wrangler-extra-args": value}, workspace="/w")


def test_a_build_command_is_an_argument_list_starting_with_a_program_name() -> None:
    from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError

    parsed = PipelineParameters.from_conf({**VALID, "build-command": '["npm", "run", "gen; rm -rf /"]'}, workspace="/w")
    assert parsed.build_command == ("npm", "run", "gen; rm -rf /"), "text, one argument, never run by a shell"
    for bad in ('["/bin/sh", "-c", "id"]', '["-rf"]', '["npm", "a\\u0000b"]', '"npm run build"'):
        with pytest.raises(InvalidParameterError, match="Invalid parameter 'build-command'"):
            PipelineParameters.from_conf({**VALID, "build-command": bad}, workspace="/w")
    round_trip = PipelineParameters.from_dict(parsed.to_dict())
    assert round_trip == parsed
