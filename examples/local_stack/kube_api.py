"""A small Kubernetes API server emulator, served over HTTP on 127.0.0.1.

No kube-apiserver can run on these machines, so this speaks the part of the API the pipeline and
``kubectl get`` use, with the server's semantics: server-assigned ``resourceVersion`` and ``uid``,
``409 AlreadyExists`` on create, ``404 NotFound``, ``409 Conflict`` on a stale update, label
selectors, server-side apply (``application/apply-patch+yaml``), JSON merge patch, and discovery;
pods that run (see ``kube_pods``), their logs and events, and PersistentVolumeClaims. Faults can be
injected per request: an HTTP status (409, 410, 500...) or a stall. Objects are kept in memory;
:meth:`KubeAPIEmulator.objects` lets tests read the ConfigMaps it holds.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from examples.local_stack import BackgroundApp
from examples.local_stack.kube_pods import PodStore

Key = tuple[str, str]  # (namespace, name)
KUBE_TOKEN = "kube-bearer-token-9c1e4b7d2a"  # the kubeconfig credential tests scan for

CONFIGMAP_RESOURCE = {
    "name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
    "verbs": ["create", "delete", "get", "list", "patch", "update"], "shortNames": ["cm"],
}
NAMESPACE_RESOURCE = {
    "name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
    "verbs": ["get", "list"], "shortNames": ["ns"],
}
OTHER_RESOURCES = [
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["create", "delete", "get", "list", "patch"], "shortNames": ["po"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event", "verbs": ["list"], "shortNames": ["ev"]},
    {"name": "persistentvolumeclaims", "singularName": "persistentvolumeclaim", "namespaced": True,
     "kind": "PersistentVolumeClaim", "verbs": ["create", "delete", "get", "list"], "shortNames": ["pvc"]},
]


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``path`` (a regex) with ``status``
    (an HTTP code) or, for ``status == "stall"``, hold them for ``stall_seconds`` first."""

    method: str
    path: str
    status: int | str
    times: int = 1
    stall_seconds: float = 30.0


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
    def __init__(self, storage: Path | None = None) -> None:
        self.storage = storage or Path(tempfile.mkdtemp(prefix="kube-api-emulator-"))
        self.pod_store = PodStore(claims_root=self.storage / "claims", pods_root=self.storage / "pods")
        self.faults: list[Fault] = []
        self._store: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._rv = 1000
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content type)
        self.port = 0
        self._server = BackgroundApp()

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
            self.faults.clear()

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    @property
    def claims_root(self) -> Path:
        """Where claim ``<name>`` lives on this machine: ``<claims_root>/<name>``."""
        return self.pod_store.claims_root

    @property
    def pods(self) -> dict[Key, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.pod_store.pods)

    @property
    def claims(self) -> dict[Key, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.pod_store.claims)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": KUBE_TOKEN}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- object semantics ------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _stamp(self, obj: dict[str, Any], namespace: str, existing: dict[str, Any] | None,
               kind: str = "ConfigMap") -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        if existing:
            meta["uid"] = existing["metadata"]["uid"]
            meta["creationTimestamp"] = existing["metadata"]["creationTimestamp"]
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["resourceVersion"] = self._next_rv()
        obj["apiVersion"], obj["kind"] = "v1", kind
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
                                  "resources": [CONFIGMAP_RESOURCE, NAMESPACE_RESOURCE, *OTHER_RESOURCES]})

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
                sent_rv = body.get("metadata", {}).get("resourceVersion")
                if sent_rv and (existing is None or sent_rv != existing["metadata"]["resourceVersion"]):
                    return status(409, "Conflict", f'Operation cannot be fulfilled on configmaps "{key[1]}": '
                                  "the object has been modified; please apply your changes to the latest version "
                                  "and try again", key[1])
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

    # -- pods ---------------------------------------------------------------------------------
    def _stamp_locked(self, obj: dict[str, Any], namespace: str, existing: Any, kind: str) -> None:
        with self._lock:
            self._stamp(obj, namespace, existing, kind=kind)

    async def create_pod(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.match_info["namespace"]
        body = await self._body(request)
        with self._lock:
            name = body.get("metadata", {}).get("name")
            if name and (namespace, name) in self.pod_store.pods:
                return status(409, "AlreadyExists", f'pods "{name}" already exists', name, "pods")
            stamp = lambda obj, ns, existing, kind: self._stamp(obj, ns, existing, kind=kind)  # noqa: E731
            pod = self.pod_store.create_pod(namespace, body, stamp)
            # later status changes come from the pod's thread, under the lock
            self.pod_store.runs[pod["metadata"]["uid"]].on_change = (
                lambda p: self._stamp_locked(p, namespace, p, "Pod"))
            return web.json_response(copy.deepcopy(pod), status=201)

    async def list_pods(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.match_info.get("namespace")
        selector = request.query.get("labelSelector", "")
        with self._lock:
            items = [copy.deepcopy(p) for (ns, _), p in sorted(self.pod_store.pods.items())
                     if (namespace is None or ns == namespace) and matches(p["metadata"].get("labels") or {}, selector)]
            return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                      "metadata": {"resourceVersion": str(self._rv)}, "items": items})

    async def get_pod(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        with self._lock:
            pod = self.pod_store.pods.get(key)
            if pod is None:
                return status(404, "NotFound", f'pods "{key[1]}" not found', key[1], "pods")
            return web.json_response(copy.deepcopy(pod))

    async def patch_pod(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        body = await self._body(request)
        with self._lock:
            pod = self.pod_store.pods.get(key)
            if pod is None:
                return status(404, "NotFound", f'pods "{key[1]}" not found', key[1], "pods")
            for field in ("labels", "annotations"):  # the only fields a pod's owner patches
                if field in body.get("metadata", {}):
                    pod["metadata"].setdefault(field, {}).update(body["metadata"][field])
            self._stamp(pod, key[0], pod, kind="Pod")
            return web.json_response(copy.deepcopy(pod))

    async def delete_pod(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        with self._lock:
            pod = self.pod_store.delete_pod(*key)
        if pod is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found', key[1], "pods")
        return web.json_response(pod)

    async def pod_log(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        with self._lock:
            pod = self.pod_store.pods.get(key)
            run = self.pod_store.runs.get(pod["metadata"]["uid"]) if pod else None
        if run is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found', key[1], "pods")
        timestamps = request.query.get("timestamps") == "true"
        follow = request.query.get("follow") == "true"
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        while True:
            lines = run.log_lines[sent:]
            for line in lines:
                text = line if timestamps else line.split(" ", 1)[1]
                await response.write((text + "\n").encode())
            sent += len(lines)
            if not follow or (run.finished.is_set() and sent == len(run.log_lines)):
                break
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response

    async def list_events(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.match_info["namespace"]
        field = request.query.get("fieldSelector", "")
        name = field.split("involvedObject.name=", 1)[1].split(",")[0] if "involvedObject.name=" in field else None
        with self._lock:
            items = [copy.deepcopy(e) for e in self.pod_store.events
                     if e["metadata"]["namespace"] == namespace and (name is None or e["involvedObject"]["name"] == name)]
            return web.json_response({"kind": "EventList", "apiVersion": "v1",
                                      "metadata": {"resourceVersion": str(self._rv)}, "items": items})

    # -- persistent volume claims ---------------------------------------------------------------
    async def create_claim(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.match_info["namespace"]
        body = await self._body(request)
        name = body.get("metadata", {}).get("name", "")
        with self._lock:
            if (namespace, name) in self.pod_store.claims:
                return status(409, "AlreadyExists", f'persistentvolumeclaims "{name}" already exists', name,
                              "persistentvolumeclaims")
            obj = self._stamp(body, namespace, None, kind="PersistentVolumeClaim")
            obj["status"] = {"phase": "Bound", "accessModes": body.get("spec", {}).get("accessModes", [])}
            self.pod_store.claims[(namespace, name)] = obj
            (self.claims_root / name).mkdir(parents=True, exist_ok=True)
            return web.json_response(copy.deepcopy(obj), status=201)

    async def get_claim(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        with self._lock:
            claim = self.pod_store.claims.get(key)
        if claim is None:
            return status(404, "NotFound", f'persistentvolumeclaims "{key[1]}" not found', key[1], "persistentvolumeclaims")
        return web.json_response(claim)

    async def delete_claim(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = (request.match_info["namespace"], request.match_info["name"])
        with self._lock:
            claim = self.pod_store.claims.pop(key, None)
        if claim is None:
            return status(404, "NotFound", f'persistentvolumeclaims "{key[1]}" not found', key[1], "persistentvolumeclaims")
        shutil.rmtree(self.claims_root / key[1], ignore_errors=True)  # the volume goes with its claim
        return web.json_response(claim)

    # -- faults -----------------------------------------------------------------------------------
    @web.middleware
    async def fault_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        for fault in list(self.faults):
            if fault.times > 0 and fault.method == request.method and re.search(fault.path, request.path):
                fault.times -= 1
                self.requests.append((request.method, request.path, f"fault:{fault.status}"))
                if fault.status == "stall":
                    await asyncio.sleep(fault.stall_seconds)
                    break
                return status(int(fault.status), {409: "Conflict", 410: "Expired", 500: "InternalError"}.get(
                    int(fault.status), "Unknown"), f"injected fault {fault.status}")
        return await handler(request)

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
        app = web.Application(middlewares=[self.fault_middleware])
        pods = "/api/v1/namespaces/{namespace}/pods"
        claims = "/api/v1/namespaces/{namespace}/persistentvolumeclaims"
        app.add_routes([
            web.get(pods, self.list_pods), web.post(pods, self.create_pod), web.get("/api/v1/pods", self.list_pods),
            web.get(pods + "/{name}", self.get_pod), web.patch(pods + "/{name}", self.patch_pod),
            web.delete(pods + "/{name}", self.delete_pod), web.get(pods + "/{name}/log", self.pod_log),
            web.get("/api/v1/namespaces/{namespace}/events", self.list_events),
            web.post(claims, self.create_claim), web.get(claims + "/{name}", self.get_claim),
            web.delete(claims + "/{name}", self.delete_claim),
        ])
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
        self.port = self._server.start(self.app(), port=port)
        return self

    def stop(self) -> None:
        self._server.stop()


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


if __name__ == "__main__":  # python -m tests.servers.kube_api: serve until interrupted
    emulator = KubeAPIEmulator().start()
    print(json.dumps({"url": emulator.url}), flush=True)
    threading.Event().wait()
