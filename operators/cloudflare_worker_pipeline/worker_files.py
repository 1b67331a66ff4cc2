"""Where the files a worker needs beside its bundle go in R2, and the manifest that lists them.

Wrangler writes additional modules (``.wasm``, text, data) that the bundle imports by relative
path, so each is stored in the bundle's own "directory": ``w/build.js`` importing
``./c600…-add.wasm`` finds ``w/c600…-add.wasm``. Their names carry a hash of their content, so two
builds' modules never collide with different bytes. The source map goes to ``<key>.map``. When
there are any, ``<key>.files.json`` lists them with their hashes, and the bundle's metadata holds
the manifest's SHA-256, so a later run that skips the build still knows, and checks, every file.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import posixpath

from cloudflare_worker_pipeline.results import BuildFile, UploadedFile

MANIFEST_METADATA = "files-sha256"  # the bundle object's metadata: SHA-256 of its files manifest
GZIP_METADATA, BROTLI_METADATA = "gzip-bytes", "brotli-bytes"  # the bundle's compressed sizes
MAX_MANIFEST_BYTES = 256 * 1024
_TYPES = {".wasm": "application/wasm", ".map": "application/json", ".txt": "text/plain", ".html": "text/html",
          ".js": "application/javascript", ".mjs": "application/javascript", ".json": "application/json"}


def file_key(bundle_key: str, file: BuildFile) -> str:
    """The object key of ``file``: beside the bundle, or ``<key>.map`` for its source map."""
    if file["kind"] == "source-map":
        return f"{bundle_key}.map"
    return posixpath.join(posixpath.dirname(bundle_key), file["name"])


def manifest_key(bundle_key: str) -> str:
    return f"{bundle_key}.files.json"


def manifest_body(files: list[UploadedFile]) -> bytes:
    """The manifest's bytes: the same files give the same bytes."""
    return json.dumps(sorted(files, key=lambda f: f["key"]), sort_keys=True, separators=(",", ":")).encode()


def parse_manifest(body: bytes, sha256: str) -> list[UploadedFile] | None:
    """The files a stored manifest lists, or None when it is not the one the bundle names."""
    if hashlib.sha256(body).hexdigest() != sha256:
        return None
    try:
        files = json.loads(body)
    except ValueError:
        return None
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and set(f) == {"key", "kind", "sha256", "size_bytes"} for f in files):
        return None
    return [UploadedFile(key=str(f["key"]), kind=str(f["kind"]), sha256=str(f["sha256"]), size_bytes=int(f["size_bytes"]))
            for f in files]


def content_type(name: str) -> str:
    suffix = posixpath.splitext(name)[1].lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
