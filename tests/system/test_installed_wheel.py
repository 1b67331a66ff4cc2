"""The built wheel, installed as a platform engineer would into a clean environment with the lowest
Airflow it declares: it registers as a provider (its settings with their defaults, its plugin),
ships its scripts and example DAG but nothing of the tests, and builds the example worker with
``dag.test()`` against the loopback S3 and git servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cloudflare_worker_pipeline.get_provider_info import DEFAULTS, SECTION

from tests.conftest import NPM_REGISTRY, R2_ACCESS_KEY, R2_SECRET_KEY, REPO, SESSION_DIR
from tests.helpers import bootstrapped_uv

LOWEST_AIRFLOW = "3.2.0"  # pyproject.toml: apache-airflow>=3.2.0
# The README's offline install: the versions shipped for that Airflow (Airflow 3.2.0 itself breaks with
# a later pydantic, which its constraints prevent).
CONSTRAINTS = REPO / "docs" / "constraints" / f"airflow-{LOWEST_AIRFLOW}.txt"


def uv() -> list[str]:
    return [str(bootstrapped_uv())]


@pytest.fixture(scope="module")
def wheel() -> Path:
    out = SESSION_DIR / "wheel"
    subprocess.run([*uv(), "build", "--wheel", "--out-dir", str(out), str(REPO)], check=True, capture_output=True)
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def clean_env(wheel: Path) -> dict[str, str]:
    """A fresh virtualenv with the wheel and the lowest supported Airflow, and an Airflow home."""
    venv = SESSION_DIR / "clean-venv"
    subprocess.run([*uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    installed = subprocess.run(
        [*uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel),
         f"apache-airflow=={LOWEST_AIRFLOW}", "--constraint", str(CONSTRAINTS)],
        capture_output=True, text=True, env={**os.environ, "UV_COMPILE_BYTECODE": "0"})
    assert installed.returncode == 0, installed.stderr[-3000:]
    home = SESSION_DIR / "clean-airflow"
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"),
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
    }
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    # The README's install steps: the DAG file in dags_folder is the repository's own three lines.
    (home / "dags").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dags" / "build_and_upload_cloudflare_worker.py", home / "dags")
    return env


def airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_wheel_ships_the_package_scripts_and_example_dags_and_nothing_of_the_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "cloudflare_worker_pipeline/scripts/bundle.sh" in names
    assert "cloudflare_worker_pipeline/example_dags/build_and_upload_cloudflare_worker.py" in names
    assert not [name for name in names if name.startswith(("tests/", "operators/", ".ci/", ".hypothesis/", "dags/"))]
    assert {name.split("/")[0] for name in names if not name.startswith("airflow_provider")} == {"cloudflare_worker_pipeline"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text and "[airflow.plugins]" in text


def test_airflow_lists_the_provider_and_every_setting_with_its_default(clean_env: dict[str, str]) -> None:
    listed = airflow(clean_env, "providers", "list", "--output", "json")
    assert any(p["package_name"] == "airflow-provider-cloudflare-worker-pipeline" for p in json.loads(listed))
    shown = airflow(clean_env, "config", "list", "--section", SECTION, "--show-values")
    lines = {line.strip() for line in shown.splitlines()}
    for key, default in DEFAULTS.items():
        assert f"{key} = {default}".strip() in lines, f"{key} = {default} missing from airflow config list"
    assert airflow(clean_env, "config", "get-value", SECTION, "sandbox").strip() == "bubblewrap"


def test_the_example_dag_builds_the_example_worker_on_the_lowest_airflow(clean_env: dict[str, str], git_server, s3_server,
                                                                        s3_client, bucket) -> None:
    repo = git_server.publish("wheel-hello", REPO / "examples" / "hello-worker")
    conf = {"git-url": repo.url, "r2-bucket-name": bucket, "r2-endpoint-url": s3_server.endpoint_url,
            "r2-object-key": "hello/{commit_sha}.js", "worker-script-artifact-config-map-name": "hello-artifact",
            "kustomize-manifests-config-map-name": "hello-manifests"}
    program = (
        "import json, sys\n"
        "import runpy\n"
        "dag = runpy.run_path(sys.argv[2])['dag']\n"
        "run = dag.test(run_conf=json.loads(sys.argv[1]))\n"
        "print('RUN-STATE', run.state)\n"
    )
    env = {**clean_env,
           "AIRFLOW_CONN_R2_DEFAULT": json.dumps({"conn_type": "aws", "login": R2_ACCESS_KEY, "password": R2_SECRET_KEY}),
           "AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT": os.environ["AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT"],
           f"AIRFLOW__{SECTION.upper()}__ALLOWED_R2_ENDPOINTS": "127.0.0.1:*",
           f"AIRFLOW__{SECTION.upper()}__ALLOWED_GIT_HOSTS": "*,127.0.0.1",
           f"AIRFLOW__{SECTION.upper()}__ALLOWED_REGISTRY_HOSTS":
               os.environ[f"AIRFLOW__{SECTION.upper()}__ALLOWED_REGISTRY_HOSTS"],
           f"AIRFLOW__{SECTION.upper()}__WORKSPACE_ROOT": str(SESSION_DIR / "clean-workspaces"),
           f"AIRFLOW__{SECTION.upper()}__CONFIGMAP_DESTINATION": "files",
           f"AIRFLOW__{SECTION.upper()}__MANIFEST_DIR": str(SESSION_DIR / "clean-manifests"),
           f"AIRFLOW__{SECTION.upper()}__INSTALL_ENV": os.environ[f"AIRFLOW__{SECTION.upper()}__INSTALL_ENV"],
           "NPM_CONFIG_REGISTRY": NPM_REGISTRY}
    dag_file = str(Path(clean_env["AIRFLOW__CORE__DAGS_FOLDER"]) / "build_and_upload_cloudflare_worker.py")
    done = subprocess.run(["python", "-c", program, json.dumps(conf), dag_file], env=env, capture_output=True, text=True,
                          timeout=600)
    assert "RUN-STATE success" in done.stdout, (done.stdout + done.stderr)[-4000:]
    stored = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    bundle = f"hello/{repo.head()}.js"
    assert [item["Key"] for item in stored] == [bundle, f"{bundle}.egress.json", f"{bundle}.files.json", f"{bundle}.intoto.json",
                                                f"{bundle}.intoto.jsonl", f"{bundle}.map"]
    assert (SESSION_DIR / "clean-manifests" / "planton-cloud-pipelines" / "hello-artifact.yaml").exists()


def test_the_sdist_holds_the_package_and_nothing_of_the_tests() -> None:
    import tarfile

    out = SESSION_DIR / "sdist"
    subprocess.run([*uv(), "build", "--sdist", "--out-dir", str(out), str(REPO)], check=True, capture_output=True)
    with tarfile.open(next(out.glob("*.tar.gz"))) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {name.split("/")[0] for name in names} == {"operators", "README.md", "LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore"}
    assert not [name for name in names if name.startswith(("tests", ".hypothesis", ".ci"))]
