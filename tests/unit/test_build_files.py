"""Reading what a build wrote: links, FIFOs and huge files are refused, never followed or read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, list_build_files, read_build_file


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "results" / "kustomize_build" / "rendered").mkdir(parents=True)
    (tmp_path / "secret.cfg").write_text("fernet_key = not-for-builds\n")
    return tmp_path / "ws"


def test_a_regular_file_inside_the_workspace_is_read(workspace: Path) -> None:
    (workspace / "results" / "kustomize_build" / "rendered" / "prod.yaml").write_text("kind: Service\n")
    assert read_build_file(workspace, "results/kustomize_build/rendered/prod.yaml", max_bytes=100) == b"kind: Service\n"


def test_a_symlinked_file_is_refused_not_followed(workspace: Path) -> None:
    (workspace / "results" / "kustomize_build" / "rendered" / "prod.yaml").symlink_to(workspace.parent / "secret.cfg")
    with pytest.raises(UnsafeBuildFileError, match="symbolic link"):
        read_build_file(workspace, "results/kustomize_build/rendered/prod.yaml", max_bytes=100)


def test_a_symlinked_directory_on_the_way_is_refused(workspace: Path) -> None:
    (workspace.parent / "elsewhere").mkdir()
    (workspace.parent / "elsewhere" / "prod.yaml").write_text("from outside\n")
    (workspace / "results" / "bundle").symlink_to(workspace.parent / "elsewhere")
    with pytest.raises(UnsafeBuildFileError, match="results/bundle is a symbolic link"):
        read_build_file(workspace, "results/bundle/prod.yaml", max_bytes=100)
    with pytest.raises(UnsafeBuildFileError, match="symbolic link"):
        list_build_files(workspace, "results/bundle")


def test_a_fifo_is_refused_without_blocking(workspace: Path) -> None:
    fifo = workspace / "results" / "kustomize_build" / "rendered" / "prod.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _capture(outcome, workspace, "results/kustomize_build/rendered/prod.yaml"))
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO must not block the worker"
    assert isinstance(outcome[0], UnsafeBuildFileError) and "not a regular file" in str(outcome[0])


def _capture(outcome: list[BaseException], root: Path, relative: str) -> None:
    try:
        read_build_file(root, relative, max_bytes=100)
    except BaseException as error:
        outcome.append(error)


def test_a_file_over_its_cap_is_refused_before_it_is_read(workspace: Path) -> None:
    big = workspace / "results" / "kustomize_build" / "rendered" / "prod.yaml"
    with big.open("wb") as handle:
        handle.truncate(10 * 1024**3)  # sparse: 10 GiB on paper
    with pytest.raises(UnsafeBuildFileError, match="10737418240 bytes, over the 1048576"):
        read_build_file(workspace, "results/kustomize_build/rendered/prod.yaml", max_bytes=1024 * 1024)


def test_paths_leaving_the_workspace_are_refused(workspace: Path) -> None:
    for relative in ("../secret.cfg", "/etc/passwd", "results/../../secret.cfg"):
        with pytest.raises(UnsafeBuildFileError, match="expected a path inside the workspace"):
            read_build_file(workspace, relative, max_bytes=100)


def test_listing_shows_regular_files_only(workspace: Path) -> None:
    rendered = workspace / "results" / "kustomize_build" / "rendered"
    (rendered / "dev.yaml").write_text("a")
    (rendered / "prod.yaml").symlink_to(workspace.parent / "secret.cfg")
    (rendered / "nested").mkdir()
    assert list_build_files(workspace, "results/kustomize_build/rendered") == ["dev.yaml"]
    assert list_build_files(workspace, "results/absent") == []
