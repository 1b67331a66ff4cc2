"""A cap on the disk one run's workspace may use, in the local mode (setting ``workspace_max_mb``).

The clone, ``node_modules``, ``dist/`` and the run's ``HOME`` all live in the workspace, on the
worker's disk: a repository's ``postinstall`` or ``[build] command`` could fill that disk and stop
every other run and the worker itself (issue 19). Two measures together:

- the kernel's per-file limit (``RLIMIT_FSIZE``, through util-linux ``prlimit``) at the cap, so
  no single write, ``fallocate`` included, goes past it; and
- a watch that measures the workspace (allocated blocks, hard links once, symlinks not followed)
  while the stage runs, and stops the stage once the total is over the cap, and again when it ends.

Between two measurements a stage may write past the cap by what the disk takes in that time (the
interval grows with the workspace's size: ten times one measurement, at least a second). A hard
cap needs a filesystem of the run's own (a loop device, an XFS project quota), which needs root;
in the kubernetes mode the per-run claim's size (``workspace_size``) is one, and each pod's
``ephemeral-storage`` limit caps its ``/tmp``.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

PRLIMIT = "prlimit"


def disk_usage(root: Path) -> int:
    """Bytes allocated under ``root``: blocks, not sizes (a sparse file costs what it holds), each
    hard-linked file once, symlinks as themselves."""
    total, seen, stack = 0, set(), [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:  # removed meanwhile, or unreadable: what is there is counted when it is seen
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
                elif info.st_nlink > 1:
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def file_size_limited(command: list[str], max_bytes: int) -> list[str]:
    """``command`` with no file it writes larger than ``max_bytes`` (``RLIMIT_FSIZE``, inherited by
    everything it starts); unchanged where util-linux ``prlimit`` is missing."""
    found = shutil.which(PRLIMIT)
    return [found, f"--fsize={max_bytes}:{max_bytes}", "--", *command] if found else command


class DiskWatch:
    """Measures ``root`` while a stage runs; calls ``stop_stage`` once when it is over ``cap_bytes``."""

    def __init__(self, root: Path, cap_bytes: int, stop_stage: Callable[[], None], *, every: float = 1.0) -> None:
        self.root, self.cap_bytes, self.stop_stage, self.every = root, cap_bytes, stop_stage, every
        self.over: int | None = None  # the usage found over the cap, in bytes
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="workspace-disk", daemon=True)

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        if self.over is None:
            self._measure()  # a stage ending between two measurements is measured all the same

    def _watch(self) -> None:
        while not self._done.is_set():
            took = self._measure()
            if self.over is not None:
                self.stop_stage()
                return
            self._done.wait(max(self.every, 10 * took))

    def _measure(self) -> float:
        started = time.monotonic()
        used = disk_usage(self.root)
        if used > self.cap_bytes:
            self.over = used
        return time.monotonic() - started
