"""The README is a contract too: every test it cites as proof, and every file it points at, exists."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()
QUOTED = set(re.findall(r"`([^`\s]+)`", README))
TOP_LEVEL = ("tests/", "examples/", "bench/", "dags/", "plugins/", "operators/", "docs/", ".ci/")
PACKAGE = REPO / "operators"


def _defined_tests() -> set[str]:
    return {name for path in (REPO / "tests").rglob("test_*.py")
            for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M)}


def test_the_readme_cites_tests_and_files() -> None:
    # The checks below are not vacuous: the README does cite both.
    assert any(re.fullmatch(r"test_\w+", name) for name in QUOTED)
    assert sum(name.startswith(TOP_LEVEL) for name in QUOTED) > 20


@pytest.mark.parametrize("name", sorted(name for name in QUOTED if re.fullmatch(r"test_\w+", name)))
def test_every_test_the_readme_cites_is_defined(name: str) -> None:
    assert name in _defined_tests(), f"README cites {name}, which no test file defines"


@pytest.mark.parametrize("name", sorted(name for name in QUOTED if re.fullmatch(r"test_\w+\.py", name)))
def test_every_test_file_the_readme_names_by_itself_exists(name: str) -> None:
    assert list((REPO / "tests").rglob(name)), f"README names {name}, which is not under tests/"


@pytest.mark.parametrize("path", sorted(name for name in QUOTED if name.startswith(TOP_LEVEL) and not
                                        re.search(r"[*<>{}]", name)))
def test_every_path_the_readme_names_exists(path: str) -> None:
    assert (REPO / path.rstrip("/")).exists(), f"README names {path}, which does not exist"


@pytest.mark.parametrize("path", sorted(name for name in QUOTED if name.startswith("cloudflare_worker_pipeline/")
                                        and not re.search(r"[*<>{}]", name)))
def test_every_package_file_the_readme_names_exists(path: str) -> None:
    assert (PACKAGE / path.rstrip("/")).exists(), f"README names {path}, which is not in the package"
