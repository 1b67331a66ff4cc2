"""What the emulator's routes share: object keys, Kubernetes' error answers, label selectors."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web

Key = tuple[str, str]  # (namespace, name)


def status(code: int, reason: str, message: str, name: str = "", kind: str = "configmaps") -> web.Response:
    body = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": reason, "details": {"name": name, "kind": kind}, "code": code,
    }
    return web.json_response(body, status=code)


def matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based and set-based (``in``, ``notin``, exists, ``!key``) label selectors."""
    for term in _split_selector(selector):
        term = term.strip()
        if not term:
            continue
        if " notin " in term or " in " in term:
            key, op, values = term.partition(" notin ") if " notin " in term else term.partition(" in ")
            allowed = {v.strip() for v in values.strip().strip("()").split(",")}
            present = labels.get(key.strip()) in allowed
            if present == (op.strip() == "notin"):
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _split_selector(selector: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, char in enumerate(selector):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            yield selector[start:i]
            start = i + 1
    yield selector[start:]
