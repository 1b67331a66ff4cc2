# Two commands for a fresh machine: `make demo` and `make test`. Everything else is a step of them.
SHELL := /bin/bash
.DELETE_ON_ERROR:
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
UV_VERSION := 0.13.9
# uv lives in a private virtualenv of its own under .tools/, bootstrapped from PyPI with the system Python's
# venv module: Debian's Python refuses `pip install` outside a virtualenv (PEP 668), and an uv already on PATH,
# of whatever version, is not used.
UV_HOME := .tools/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
PY := .venv/bin/python

.PHONY: demo airflow test unit setup sandbox postgres system-deps lint bench constraints clean

## demo: set up, start SeaweedFS on 127.0.0.1, build examples/hello-worker through the real DAG
demo: setup sandbox
	$(PY) examples/demo.py

## airflow: a real Airflow (api-server, scheduler, dag-processor, triggerer on PostgreSQL) running the pipeline
## against SeaweedFS and a git daemon on 127.0.0.1; prints the UI, the login and a curl that triggers a build
airflow: setup sandbox postgres
	$(PY) examples/airflow_stack.py

## test: set up and run the test suite (real git, npm registry, wrangler, S3, Kubernetes API emulator)
test: setup sandbox system-deps lint
	$(PY) -m pytest

## unit: the fast layer alone (pytest -m unit: parameters, settings, sandbox, build files, pod specs...; seconds)
unit: setup sandbox
	$(PY) -m pytest -m unit

## setup: Python environment from uv.lock (Airflow 3.3.2, providers, SeaweedFS); checks Node 20 and kubectl
setup: $(UV)
	$(UV) sync --frozen
	@node -e 'const m = +process.versions.node.split(".")[0]; if (m < 20) { console.error(`Node ${process.version}: Node 20+ is needed (Wrangler 4.86.0)`); process.exit(1) }'
	@command -v kubectl >/dev/null || { echo "kubectl (with kustomize) is needed on PATH"; exit 1; }

## the pinned uv, in .tools/uv-<version> (Debian's python3-venv is installed when the venv module cannot make a virtualenv)
$(UV):
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is needed on PATH"; exit 1; }
	@rm -rf $(UV_HOME); python3 -m venv $(UV_HOME) >/dev/null 2>&1 || { rm -rf $(UV_HOME); \
	  echo "installing: python3-venv (Python's venv module, to bootstrap uv)"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && python3 -m venv $(UV_HOME); }
	$(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(UV) --version | grep -q "^uv $(UV_VERSION) " || { echo "$(UV): not uv $(UV_VERSION)"; exit 1; }

## sandbox: Debian's bubblewrap, which the local execution mode runs every stage script in
sandbox:
	@command -v bwrap >/dev/null || { echo "installing: bubblewrap"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }

## postgres: Debian's PostgreSQL, the metadata database of `make airflow`
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing: postgresql"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

BUN_VERSION ?= 1.4.5

## system-deps: Debian packages the tests use: shellcheck (make lint), busybox (the stage scripts under a POSIX sh like
## node:20-alpine's), postgresql (the running-Airflow tests' metadata database), chromium (the UI test),
## redis (the Celery scale-out test's broker), docker-compose (validating docker-compose.yaml; no engine needed);
## and Bun from the npm registry (the bun.lock fixture's package manager)
system-deps:
	@missing=""; command -v busybox >/dev/null || missing="$$missing busybox"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	test -x /usr/sbin/sshd || missing="$$missing openssh-server"; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@command -v bun >/dev/null || { echo "installing: bun $(BUN_VERSION) (npm -g)"; \
	  npm install -g --no-audit --no-fund --loglevel=error bun@$(BUN_VERSION) >/dev/null; }

## bench: the pipeline against the raw tools, side by side (bench/pipeline_runs.py), then the DAG's parse cost
bench: setup sandbox postgres
	$(PY) bench/pipeline_runs.py
	$(PY) bench/dependency_cache.py
	$(PY) bench/install_phases.py

## constraints: docs/constraints/airflow-<version>.txt, the versions the wheel is installed with beside each tested
## Airflow when Airflow's own constraints URL cannot be fetched: the newest as uv.lock pins it, the lowest
## (pyproject.toml's floor) as resolved the day after its release; tests check both
LOWEST_AIRFLOW := 3.2.0
LOWEST_AIRFLOW_RESOLVED_AT := 2026-04-08T00:00:00Z
constraints: $(UV)
	@locked=$$(sed -n '/^name = "apache-airflow"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock); \
	{ echo "# pip install <the wheel> apache-airflow==$$locked --constraint <this file>: the versions tested with Airflow $$locked (uv.lock)."; \
	  echo "# Made by make constraints (uv export); Python 3.11-3.13."; \
	  $(UV) export --frozen --format requirements-txt --no-hashes --no-dev --no-emit-project --no-header --no-annotate; \
	} > docs/constraints/airflow-$$locked.txt
	@{ echo "# pip install <the wheel> apache-airflow==$(LOWEST_AIRFLOW) --constraint <this file>: the versions tested with Airflow $(LOWEST_AIRFLOW)"; \
	  echo "# (tests/system/test_installed_wheel.py), as PyPI had them on $(LOWEST_AIRFLOW_RESOLVED_AT). Made by make constraints; Python 3.11-3.13."; \
	  echo "apache-airflow==$(LOWEST_AIRFLOW)" | $(UV) pip compile pyproject.toml - --universal --python-version 3.11 \
	    --exclude-newer $(LOWEST_AIRFLOW_RESOLVED_AT) --no-header --no-annotate --quiet; \
	} > docs/constraints/airflow-$(LOWEST_AIRFLOW).txt
	@ls docs/constraints/

lint: setup system-deps
	$(PY) -m ruff check operators dags plugins tests examples bench
	$(PY) -m mypy operators/cloudflare_worker_pipeline dags plugins
	shellcheck -s sh -S warning operators/cloudflare_worker_pipeline/scripts/*.sh tests/fixtures/hostile/escape.sh examples/compose/*.sh

clean:
	rm -rf .venv .tools .demo .pytest_cache .ruff_cache .mypy_cache
