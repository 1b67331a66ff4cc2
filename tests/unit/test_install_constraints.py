"""The constraints shipped for installing the wheel beside each tested Airflow (README, "Install into
your Airflow"): they must say what the tests install, so an offline install gets tested versions."""

from __future__ import annotations

import re
import subprocess
import tomllib

from tests.conftest import REPO
from tests.helpers import bootstrapped_uv, makefile_variable

CONSTRAINTS = REPO / "docs" / "constraints"


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.M))


def _airflow_floor() -> str:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(re.search(r">=([\d.]+)", d).group(1) for d in dependencies if d.startswith("apache-airflow>"))  # type: ignore[union-attr]


def test_the_newest_airflows_constraints_are_exactly_the_lockfile() -> None:
    exported = subprocess.run([str(bootstrapped_uv()), "export", "--frozen", "--format", "requirements-txt",
                               "--no-hashes", "--no-dev", "--no-emit-project", "--no-header", "--no-annotate"],
                              cwd=REPO, check=True, capture_output=True, text=True).stdout
    locked = _pins(exported)["apache-airflow"]
    shipped = (CONSTRAINTS / f"airflow-{locked}.txt").read_text()
    assert [line for line in shipped.splitlines() if not line.startswith("#")] == exported.splitlines(), (
        "uv.lock changed: run make constraints")


def test_the_lowest_airflows_constraints_pin_the_floor_that_pyproject_declares() -> None:
    floor = _airflow_floor()
    assert makefile_variable("LOWEST_AIRFLOW") == floor
    pins = _pins((CONSTRAINTS / f"airflow-{floor}.txt").read_text())
    assert pins["apache-airflow"] == pins["apache-airflow-core"] == floor
    # The package Airflow 3.2.0 breaks with when left to float (README, Troubleshooting).
    assert pins["pydantic"].startswith("2.12.")
    for provider in ("apache-airflow-providers-amazon", "apache-airflow-providers-cncf-kubernetes"):
        assert provider in pins
