"""Reading what a build wrote, on the worker, without trusting it.

A build's code can write anything into its workspace: a symlink where the bundle or a rendered
overlay should be (to ``airflow.cfg``, ``/proc/self/environ``), a FIFO that blocks a reader, a
file of many gigabytes. The worker reads with its own privileges, so every read goes through
here: each path component is opened beneath the workspace without following symlinks, the file
must be a regular file, and its size is capped before and while it is read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeBuildFileError(ValueError):
    """A file a build wrote is not what the worker may read: a link, not a regular file, too large."""


def _parts(relative: str | PurePath) -> list[str]:
    parts = [part for part in PurePosixPath(relative).parts if part not in ("", ".")]
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise UnsafeBuildFileError(f"{relative}: expected a path inside the workspace")
    return parts


@contextlib.contextmanager
def _directory(root: Path, parts: list[str], shown: str) -> Iterator[int]:
    """An open descriptor of ``root/parts...``, each component opened without following links."""
    fd = os.open(root, _DIRECTORY_FLAGS)
    try:
        for index, part in enumerate(parts):
            try:
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as error:
                raise _refusal(error, "/".join(parts[: index + 1]), shown) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _refusal(error: OSError, where: str, shown: str) -> Exception:
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        return UnsafeBuildFileError(f"{shown}: {where} is a symbolic link or not a directory; refusing to follow it")
    if error.errno == errno.ENOENT:
        return FileNotFoundError(errno.ENOENT, f"{shown}: {where} does not exist")
    return error


def read_build_file(root: Path, relative: str | PurePath, *, max_bytes: int) -> bytes:
    """The bytes of ``root/relative``, refusing links anywhere on the path, non-regular files and
    files over ``max_bytes``."""
    parts = _parts(relative)
    shown = "/".join(parts)
    with _directory(root, parts[:-1], shown) as parent:
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
        except OSError as error:
            raise _refusal(error, shown, shown) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeBuildFileError(f"{shown} is not a regular file; refusing to read it")
        if info.st_size > max_bytes:
            raise UnsafeBuildFileError(f"{shown} is {info.st_size} bytes, over the {max_bytes} bytes it may hold")
        content = handle.read(max_bytes + 1)
    if len(content) > max_bytes:  # it grew while being read
        raise UnsafeBuildFileError(f"{shown} grew past the {max_bytes} bytes it may hold while being read")
    return content


def list_build_files(root: Path, relative_dir: str | PurePath) -> list[str]:
    """Names of the regular files in ``root/relative_dir``, sorted; links and other kinds are
    skipped. An absent directory lists nothing."""
    parts = _parts(relative_dir)
    try:
        with _directory(root, parts, "/".join(parts)) as fd, os.scandir(fd) as entries:
            return sorted(entry.name for entry in entries if entry.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []
