"""Which Node a project builds with: the parameter, its version files, the image it chooses."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudflare_worker_pipeline.node_version import NodeVersionError, parse, project_node_version, satisfies

from tests.helpers import SETTING, render_pod


@pytest.mark.parametrize("text,version", [
    ("20\n", "20"), ("v22.11.0", "22.11.0"), (" 18.19 \n# comment", "18.19"), ("lts/iron", "20"), ("LTS/Jod", "22"),
])
def test_version_files_are_read_as_nvm_reads_them(text: str, version: str) -> None:
    assert parse(text, ".nvmrc") == version


@pytest.mark.parametrize("text", ["node", "lts/*", "latest", ">=20", "20.x", "", "$(id)"])
def test_versions_that_need_the_network_or_a_range_are_refused_naming_the_file(text: str) -> None:
    with pytest.raises(NodeVersionError, match=r"^services/api/\.nvmrc names Node"):
        parse(text, "services/api/.nvmrc")


def test_the_project_root_wins_over_the_install_directory_and_nvmrc_over_node_version(tmp_path: Path) -> None:
    (tmp_path / "services" / "api").mkdir(parents=True)
    (tmp_path / ".node-version").write_text("18\n")
    assert project_node_version(tmp_path, ["services/api", "."]) == {"version": "18", "source": ".node-version"}
    (tmp_path / "services" / "api" / ".node-version").write_text("20\n")
    (tmp_path / "services" / "api" / ".nvmrc").write_text("22\n")
    assert project_node_version(tmp_path, ["services/api", "."]) == {"version": "22", "source": "services/api/.nvmrc"}
    assert project_node_version(tmp_path / "services", ["nothing"]) is None


def test_a_version_file_linking_elsewhere_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("20")
    (tmp_path / ".nvmrc").symlink_to(tmp_path / "secret")
    with pytest.raises(NodeVersionError, match=r"^\.nvmrc: "):
        project_node_version(tmp_path, ["."])


@pytest.mark.parametrize("actual,wanted,ok", [
    ("v20.19.1", "20", True), ("v20.19.1", "20.19", True), ("v20.19.1", "20.19.1", True), ("v20.19.1", "20.1", False),
    ("v20.19.1", "22", False), ("v20.19.1", "2", False), ("", "20", False),
])
def test_the_workers_node_satisfies_a_version_by_its_leading_parts(actual: str, wanted: str, ok: bool) -> None:
    assert satisfies(actual, wanted) is ok


def test_a_project_naming_its_node_gets_that_image_in_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudflare_worker_pipeline.operators.bundle import BundleWorkerOperator
    from cloudflare_worker_pipeline.operators.install import InstallDependenciesOperator

    checkout = {"commit_sha": "0" * 40, "node_version": {"version": "22", "source": ".nvmrc"}}
    image = render_pod(BundleWorkerOperator, monkeypatch, checkout=checkout)["spec"]["containers"][0]["image"]
    assert image == "node:22-alpine"
    monkeypatch.setenv(SETTING + "NODE_IMAGE_TEMPLATE", "registry.example.com/node:{version}-alpine")
    image = render_pod(InstallDependenciesOperator, monkeypatch, checkout=checkout)["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/node:22-alpine"
    assert render_pod(BundleWorkerOperator, monkeypatch)["spec"]["containers"][0]["image"] == "node:20-alpine"


def test_a_template_without_its_version_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError

    for bad in ("node:22-alpine", "node:{version}-{variant}"):
        monkeypatch.setenv(SETTING + "NODE_IMAGE_TEMPLATE", bad)
        with pytest.raises(SettingsError, match="node_image_template"):
            PipelineSettings.from_airflow_config()


def test_bun_is_picked_as_install_sh_picks_it(tmp_path: Path) -> None:
    from cloudflare_worker_pipeline.operators.install import bun_lockfile

    assert not bun_lockfile(tmp_path)
    (tmp_path / "bun.lockb").write_bytes(b"\0")
    assert bun_lockfile(tmp_path)
    (tmp_path / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    assert not bun_lockfile(tmp_path), "a pnpm lockfile wins, as in install.sh"
