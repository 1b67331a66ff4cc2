"""A small Kubernetes API server emulator for ConfigMaps, served over HTTP on 127.0.0.1.

No kube-apiserver can run on these machines, so this speaks the part of the API the pipeline and
``kubectl get`` use, with the server's semantics: server-assigned ``resourceVersion`` and ``uid``,
``409 AlreadyExists`` on create, ``404 NotFound``, ``409 Conflict`` on a stale update, label
selectors, server-side apply (``application/apply-patch+yaml``), JSON merge patch, and discovery.
Everything is kept in memory; :meth:`KubeAPIEmulator.objects` lets tests read what it holds.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.servers import free_port

Key = tuple[str, str]  # (namespace, name)

CONFIGMAP_RESOURCE = {
    "name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
    "verbs": ["create", "delete", "get", "list", "patch", "update"], "shortNames": ["cm"],
}
NAMESPACE_RESOURCE = {
    "name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
    "verbs": ["get", "list"], "shortNames": ["ns"],
}


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


class KubeAPIEmulator:
    def __init__(self) -> None:
        self._store: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._rv = 1000
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content type)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- what tests read -----------------------------------------------------------------
    def objects(self) -> dict[Key, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._store)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._store.get((namespace, name)))

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self.requests.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- object semantics ------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _stamp(self, obj: dict[str, Any], namespace: str, existing: dict[str, Any] | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        if existing:
            meta["uid"] = existing["metadata"]["uid"]
            meta["creationTimestamp"] = existing["metadata"]["creationTimestamp"]
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["resourceVersion"] = self._next_rv()
        obj["apiVersion"], obj["kind"] = "v1", "ConfigMap"
        return obj

    # -- handlers -------------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path, request.headers.get("Content-Type", "")))

    async def discovery_api(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]})

    async def discovery_apis(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def discovery_v1(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"kind": "APIResourceList", "groupVersion": "v1",
                                  "resources": [CONFIGMAP_RESOURCE, NAMESPACE_RESOURCE]})

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0-emulator", "platform": "linux/amd64"})

    async def list_configmaps(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.match_info.get("namespace")
        selector = request.query.get("labelSelector", "")
        with self._lock:
            items = [copy.deepcopy(obj) for (ns, _), obj in sorted(self._store.items())
                     if (namespace is None or ns == namespace)
                     and matches(obj["metadata"].get("labels") or {}, selector)]
            rv = str(self._rv)
        return web.json_response({"kind": "ConfigMapList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": rv}, "items": items})

    async def create_configmap(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.match_info["namespace"]
        body = await self._body(request)
        name = body.get("metadata", {}).get("name", "")
        if not name:
            return status(422, "Invalid", "ConfigMap \"\" is invalid: metadata.name: Required value")
        with self._lock:
            if (namespace, name) in self._store:
                return status(409, "AlreadyExists", f'configmaps "{name}" already exists', name)
            obj = self._stamp(body, namespace, None)
            self._store[(namespace, name)] = obj
            return web.json_response(copy.deepcopy(obj), status=201)

    async def get_configmap(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        with self._lock:
            obj = self._store.get(key)
            if obj is None:
                return status(404, "NotFound", f'configmaps "{key[1]}" not found', key[1])
            return web.json_response(copy.deepcopy(obj))

    async def replace_configmap(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        body = await self._body(request)
        with self._lock:
            existing = self._store.get(key)
            if existing is None:
                return status(404, "NotFound", f'configmaps "{key[1]}" not found', key[1])
            sent_rv = body.get("metadata", {}).get("resourceVersion")
            if sent_rv and sent_rv != existing["metadata"]["resourceVersion"]:
                return status(409, "Conflict", f'Operation cannot be fulfilled on configmaps "{key[1]}": '
                              "the object has been modified; please apply your changes to the latest version and try again", key[1])
            obj = self._stamp(body, key[0], existing)
            self._store[key] = obj
            return web.json_response(copy.deepcopy(obj))

    async def patch_configmap(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        content_type = request.headers.get("Content-Type", "").split(";")[0]
        body = await self._body(request)
        with self._lock:
            existing = self._store.get(key)
            if content_type == "application/apply-patch+yaml":
                if not request.query.get("fieldManager"):
                    return status(422, "Invalid", "PATCH with apply requires a fieldManager", key[1])
                # Apply: the manager's intent replaces what it owns (data), merges metadata maps.
                base = copy.deepcopy(existing) if existing else {"metadata": {"name": key[1]}}
                for field in ("labels", "annotations"):
                    if field in body.get("metadata", {}):
                        base["metadata"].setdefault(field, {}).update(body["metadata"][field])
                if "data" in body:
                    base["data"] = body["data"]
                base["metadata"]["managedFields"] = [{"manager": request.query["fieldManager"], "operation": "Apply"}]
                obj = self._stamp(base, key[0], existing)
                self._store[key] = obj
                return web.json_response(copy.deepcopy(obj), status=200 if existing else 201)
            if existing is None:
                return status(404, "NotFound", f'configmaps "{key[1]}" not found', key[1])
            if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                obj = _merge_patch(copy.deepcopy(existing), body)
                obj = self._stamp(obj, key[0], existing)
                self._store[key] = obj
                return web.json_response(copy.deepcopy(obj))
            return status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}", key[1])

    async def delete_configmap(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        with self._lock:
            obj = self._store.pop(key, None)
        if obj is None:
            return status(404, "NotFound", f'configmaps "{key[1]}" not found', key[1])
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success",
                                  "details": {"name": key[1], "kind": "configmaps", "uid": obj["metadata"]["uid"]}})

    async def list_namespaces(self, request: web.Request) -> web.Response:
        with self._lock:
            names = sorted({ns for ns, _ in self._store} | {"default"})
        return web.json_response({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {},
                                  "items": [{"metadata": {"name": n}, "status": {"phase": "Active"}} for n in names]})

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if request.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
            raise web.HTTPUnsupportedMediaType(text="protobuf is not supported by the emulator; use JSON")
        return yaml.safe_load(raw) or {}  # JSON is YAML; apply patches may be either

    # -- lifecycle --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        base = "/api/v1/namespaces/{namespace}/configmaps"
        app.add_routes([
            web.get("/api", self.discovery_api), web.get("/apis", self.discovery_apis),
            web.get("/api/v1", self.discovery_v1), web.get("/version", self.version),
            web.get("/api/v1/configmaps", self.list_configmaps),
            web.get("/api/v1/namespaces", self.list_namespaces),
            web.get(base, self.list_configmaps), web.post(base, self.create_configmap),
            web.get(base + "/{name}", self.get_configmap), web.put(base + "/{name}", self.replace_configmap),
            web.patch(base + "/{name}", self.patch_configmap), web.delete(base + "/{name}", self.delete_configmap),
        ])
        return app

    def start(self, port: int | None = None) -> KubeAPIEmulator:
        self.port = port or free_port()
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="kube-api-emulator", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("Kubernetes API emulator did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


@contextmanager
def running_emulator() -> Iterator[KubeAPIEmulator]:
    emulator = KubeAPIEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


if __name__ == "__main__":  # python -m tests.servers.kube_api: serve until interrupted
    emulator = KubeAPIEmulator().start()
    print(json.dumps({"url": emulator.url}), flush=True)
    threading.Event().wait()
