"""How a stage's tool output reaches the task log: at the level the tool meant, and with a sign
of life when a step is silent."""

from __future__ import annotations

import logging
import time

import pytest


@pytest.mark.parametrize("line,level", [
    ("npm warn deprecated inflight@1.0.6: This module is not supported", logging.WARNING),
    ("npm error code ERESOLVE", logging.ERROR),
    ("npm ERR! code E404", logging.ERROR),
    ("warning package.json: No license field", logging.WARNING),  # Yarn 1
    (" WARN  deprecated glob@7.2.3", logging.WARNING),  # pnpm
    (" ERR_PNPM_OUTDATED_LOCKFILE  Cannot install with frozen-lockfile", logging.ERROR),
    ("▲ [WARNING] The entrypoint src/index.ts has exports like `foo`", logging.WARNING),  # Wrangler
    ("✘ [ERROR] Could not resolve \"./missing\"", logging.ERROR),
    ("fatal: repository 'https://example.invalid/x.git/' not found", logging.ERROR),  # git
    ("ERROR: wrangler.toml not found in project root", logging.ERROR),  # our scripts
    ("added 36 packages in 3s", logging.INFO),
    ("bundle: dist/index.js, 63213 bytes, sha256 4d0b", logging.INFO),
    ("Errors: 0, warnings: 0 (summary)", logging.INFO),
])
def test_tool_lines_are_logged_at_the_level_the_tool_meant(line, level, caplog) -> None:
    from cloudflare_worker_pipeline.execution.base import log_tool_line

    logger = logging.getLogger("stage-output")
    with caplog.at_level(logging.DEBUG, logger="stage-output"):
        log_tool_line(logger, line)
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [(level, line)]


def test_a_silent_step_says_it_is_still_running(caplog) -> None:
    from cloudflare_worker_pipeline.execution.base import ProgressReporter

    logger = logging.getLogger("stage-progress")
    with caplog.at_level(logging.INFO, logger="stage-progress"), ProgressReporter(logger, "install.sh", every=1):
        time.sleep(2.6)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) >= 2 and all(line.startswith("install.sh still running: ") for line in lines)


def test_output_keeps_the_progress_line_away(caplog) -> None:
    from cloudflare_worker_pipeline.execution.base import ProgressReporter

    logger = logging.getLogger("stage-busy")
    with caplog.at_level(logging.INFO, logger="stage-busy"), ProgressReporter(logger, "bundle.sh", every=1) as progress:
        for _ in range(12):
            progress.output_seen()
            time.sleep(0.2)
    assert caplog.records == []
