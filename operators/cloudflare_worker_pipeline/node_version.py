"""Which Node a project builds with: the ``node-version`` parameter, else the project's ``.nvmrc``
or ``.node-version`` (as nvm, fnm, Volta and Cloudflare's Workers Builds read them), else the
deployment's default (``node_image``, Node 20 here).

In the kubernetes mode the version chooses the install, bundle and typecheck image through the
``node_image_template`` setting (``node:{version}-alpine``). In the local mode the worker's own
``node`` is used, so a version it does not satisfy fails the checkout, saying which and why,
before anything is installed.
"""

from __future__ import annotations

import re
from pathlib import Path

from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, read_build_file
from cloudflare_worker_pipeline.results import NodeVersion

VERSION_FILES = (".nvmrc", ".node-version")
_NUMBER = re.compile(r"^v?(?P<version>\d{1,3}(\.\d{1,4}){0,2})$")
# The LTS code names nvm accepts, resolved without the network.
LTS_NAMES = {"lts/hydrogen": "18", "lts/iron": "20", "lts/jod": "22", "lts/krypton": "24"}


class NodeVersionError(ValueError):
    """The project names a Node version this deployment cannot resolve or provide."""


def parse(text: str, source: str) -> str:
    """The version a version file or the parameter names: a number, with or without ``v``."""
    line = (text.strip().splitlines() or [""])[0].strip().lower()
    if line in LTS_NAMES:
        return LTS_NAMES[line]
    match = _NUMBER.match(line)
    if not match:
        raise NodeVersionError(f"{source} names Node {line[:40]!r}, which this pipeline cannot resolve without the "
                               "network: write a version number such as 20 or 20.11.1 (or set the node-version "
                               "parameter)")
    return match["version"]


def project_node_version(clone: Path, directories: list[str]) -> NodeVersion | None:
    """The first version file in ``directories`` of the clone (the project root, then the install
    directory), read as a build file: a link or anything over a few bytes is refused."""
    for directory in directories:
        for name in VERSION_FILES:
            path = clone / directory / name
            if not path.exists() and not path.is_symlink():
                continue
            source = path.relative_to(clone).as_posix()
            try:
                text = read_build_file(clone, source, max_bytes=200).decode("utf-8", "replace")
            except UnsafeBuildFileError as error:
                raise NodeVersionError(f"{source}: {error}") from None
            return NodeVersion(version=parse(text, source), source=source)
    return None


def satisfies(actual: str, wanted: str) -> bool:
    """Does ``node --version`` (``v20.19.1``) satisfy ``wanted`` (``20``, ``20.19`` or ``20.19.1``)?"""
    parts = actual.strip().lstrip("v").split(".")
    return parts[: len(wanted.split("."))] == wanted.split(".")


def image_for(template: str, default_image: str, wanted: NodeVersion | None) -> str:
    return template.format(version=wanted["version"]) if wanted else default_image
