"""`make setup` as a newcomer meets it: Debian's own Python, which refuses `pip install` outside a
virtualenv (PEP 668), no uv and no pyenv on PATH. The Makefile must bootstrap its pinned uv into a
private virtualenv under `.tools/` and build `.venv` from `uv.lock` without touching that Python."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, SESSION_DIR
from tests.helpers import bootstrapped_uv, makefile_variable

DEBIAN_PYTHON = Path("/usr/bin/python3")


def _fresh_checkout(destination: Path) -> Path:
    """The repository's files as a clone would have them (tracked and new, not ignored), nothing built."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = REPO / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def _newcomer_env() -> dict[str, str]:
    """This machine's environment (CA bundles, proxies) with PATH cut to the system's directories and
    where node and kubectl are: no pyenv, no uv, no virtualenv, none of the test session's Airflow."""
    tool_dirs = [str(Path(shutil.which(tool) or "/usr/bin").parent) for tool in ("node", "kubectl")]
    path = ":".join(dict.fromkeys([*tool_dirs, "/usr/bin", "/bin", "/usr/sbin", "/sbin"]))
    kept = {key: value for key, value in os.environ.items()
            if not key.startswith(("PYENV", "AIRFLOW", "VIRTUAL_ENV", "UV_", "PYTHON"))}
    return {**kept, "PATH": path, "PIP_REQUIRE_VIRTUALENV": "true"}


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="needs Debian's /usr/bin/python3")
def test_make_setup_bootstraps_uv_where_the_system_python_refuses_pip() -> None:
    env, uv_version = _newcomer_env(), makefile_variable("UV_VERSION")
    assert shutil.which("uv", path=env["PATH"]) is None, "an uv on the newcomer's PATH would hide a missing bootstrap"
    assert shutil.which("python3", path=env["PATH"]) == str(DEBIAN_PYTHON)
    # What the Makefile used to do is refused here, so the bootstrap below is really needed.
    refused = subprocess.run(["python3", "-m", "pip", "install", "--dry-run", "--quiet", f"uv=={uv_version}"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert re.search(r"externally-managed-environment|virtualenv", refused.stdout + refused.stderr), refused.stderr

    checkout = _fresh_checkout(SESSION_DIR / "fresh-checkout")
    done = subprocess.run(["make", "setup"], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    uv = bootstrapped_uv(checkout)
    assert subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout.startswith(f"uv {uv_version} ")
    venv = (checkout / ".venv" / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", venv, re.M), venv  # built on Debian's Python, not pyenv's
    imported = subprocess.run([str(checkout / ".venv/bin/python"), "-c",
                               "import cloudflare_worker_pipeline, airflow.sdk; print(cloudflare_worker_pipeline.__file__)"],
                              env=env, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert imported.stdout.strip().startswith(str(checkout)), imported.stdout
    # The system Python was left alone: no uv was installed into it.
    assert subprocess.run(["python3", "-c", "import uv"], env=env, capture_output=True).returncode != 0
