"""Paths stay in the clone: a repository's symlinks must not lead a build outside it.

Without running any code, a repository can hold ``src/config.json -> /etc/...`` (esbuild inlines
it), a symlinked overlay directory, or a ``project-root`` passing through a link to elsewhere (the
bundle stage would then clean ``<elsewhere>/dist``). After checkout every symlink in the clone must
resolve inside it, and each stage checks the directories it works in before it starts.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathEscapesCloneError(ValueError):
    """A symlink in the clone resolves outside it."""


def _inside(path: str, clone: str) -> bool:
    return path == clone or path.startswith(clone + os.sep)


def escaping_symlinks(clone: Path) -> list[tuple[str, str]]:
    """(link, target) for every symlink in ``clone`` (``.git`` aside) that resolves outside it."""
    root = os.path.realpath(clone)
    found: list[tuple[str, str]] = []
    for directory, dirs, files in os.walk(clone, followlinks=False):
        if directory == str(clone):
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in (*dirs, *files):
            path = os.path.join(directory, name)
            if os.path.islink(path) and not _inside(os.path.realpath(path), root):
                found.append((os.path.relpath(path, clone), os.readlink(path)))
    return sorted(found)


def check_no_escaping_symlinks(clone: Path) -> None:
    """Raise naming the first symlinks that lead outside the clone."""
    escaping = escaping_symlinks(clone)
    if escaping:
        shown = ", ".join(f"{link} -> {target}" for link, target in escaping[:5])
        raise PathEscapesCloneError(
            f"the repository has symbolic links pointing outside it ({shown}); a build may only read its own "
            "files: make them relative links inside the repository, or copy the files in"
        )


def check_confined(clone: Path, relative: str, parameter: str) -> None:
    """Raise when ``clone/relative`` passes through a symlink leading outside the clone, naming it."""
    root = os.path.realpath(clone)
    current = clone
    for part in PurePosixPath(relative).parts:
        if part in ("", "."):
            continue
        current = current / part
        if os.path.islink(current) and not _inside(os.path.realpath(current), root):
            raise PathEscapesCloneError(
                f"{parameter} {relative!r} passes through the symbolic link {current.relative_to(clone)} -> "
                f"{os.readlink(current)}, which leads outside the repository"
            )
