"""The toolchain as the worker measures it from the clone, before any repository code runs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError
from cloudflare_worker_pipeline.settings import PipelineSettings
from cloudflare_worker_pipeline.toolchain import measured_toolchain

from tests.helpers import SETTING


def _clone(tmp_path: Path, files: dict[str, str]) -> Path:
    install = tmp_path / "checkout" / "app"
    install.mkdir(parents=True)
    for name, text in files.items():
        (install / name).write_text(text)
    return install


def test_a_pnpm_project_names_its_declared_pnpm_and_its_lockfiles_digest(tmp_path: Path) -> None:
    install = _clone(tmp_path, {"package.json": json.dumps({"packageManager": "pnpm@9.15.0+sha512.abc"}),
                                "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"})
    found = measured_toolchain(tmp_path, install, PipelineSettings.from_airflow_config(), None)
    assert found["package-manager"] == "pnpm@9.15.0" and found["lockfile"] == "pnpm-lock.yaml"
    assert found["lockfile-sha256"] == hashlib.sha256(b"lockfileVersion: '9.0'\n").hexdigest()
    assert found["node"].startswith("v20."), found  # the worker's own node


def test_the_install_stages_detection_order_and_an_undeclared_yarn(tmp_path: Path) -> None:
    install = _clone(tmp_path, {"package.json": "{}", "yarn.lock": "# yarn\n", "package-lock.json": "{}"})
    found = measured_toolchain(tmp_path, install, PipelineSettings.from_airflow_config(), None)
    assert (found["lockfile"], found["package-manager"]) == ("yarn.lock", "yarn (corepack's default)")


def test_npm_is_the_workers_own_and_in_pods_the_images(tmp_path: Path, monkeypatch) -> None:
    install = _clone(tmp_path, {"package.json": json.dumps({"packageManager": "yarn@4.0.0"}),
                                "package-lock.json": "{}"})
    local = measured_toolchain(tmp_path, install, PipelineSettings.from_airflow_config(), None)
    assert local["package-manager"].startswith("npm@1"), local  # not the yarn package.json names: npm ci ran
    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv(SETTING + "NODE_IMAGE", "node:20-alpine@sha256:" + "f" * 64)
    pods = measured_toolchain(tmp_path, install, PipelineSettings.from_airflow_config(), None)
    assert pods["package-manager"] == "npm of image node:20-alpine@sha256:" + "f" * 64
    assert pods["node"] == "node:20-alpine@sha256:" + "f" * 64


def test_a_lockfile_that_is_a_link_is_refused(tmp_path: Path) -> None:
    install = _clone(tmp_path, {"package.json": "{}"})
    os.symlink("/etc/passwd", install / "package-lock.json")
    with pytest.raises(UnsafeBuildFileError, match="lockfile"):
        measured_toolchain(tmp_path, install, PipelineSettings.from_airflow_config(), None)
