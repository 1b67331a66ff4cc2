"""Symlinks in a repository must not lead a build outside its clone."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudflare_worker_pipeline.clone_paths import (
    PathEscapesCloneError,
    check_confined,
    check_no_escaping_symlinks,
    escaping_symlinks,
)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "source" / "services" / "api" / "src").mkdir(parents=True)
    (tmp_path / "source" / "shared").mkdir()
    (tmp_path / "source" / ".git").mkdir()
    return tmp_path / "source"


def test_links_inside_the_clone_are_fine(clone: Path) -> None:
    (clone / "services" / "api" / "src" / "shared").symlink_to("../../../shared")
    (clone / ".git" / "outside").symlink_to("/etc")  # git's own directory is not the build's
    assert escaping_symlinks(clone) == []
    check_confined(clone, "services/api/src/shared", "project-root")


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../outside", "/"])
def test_a_link_out_of_the_clone_fails_naming_the_link(clone: Path, target: str) -> None:
    (clone / "services" / "api" / "src" / "config.json").symlink_to(target)
    with pytest.raises(PathEscapesCloneError, match=f"services/api/src/config.json -> {target}"):
        check_no_escaping_symlinks(clone)


def test_a_project_root_passing_through_a_link_out_of_the_clone_names_the_link(clone: Path) -> None:
    (clone / "services" / "web").symlink_to(clone.parent / "outside")
    with pytest.raises(PathEscapesCloneError, match=r"project-root 'services/web/app' passes through the symbolic link "
                                                     r"services/web -> .*outside"):
        check_confined(clone, "services/web/app", "project-root")
