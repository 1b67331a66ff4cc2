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
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from examples.local_stack import BackgroundApp
from examples.local_stack.kube_configmaps import ConfigMapRoutes
from examples.local_stack.kube_objects import Key, status
from examples.local_stack.kube_pods import PodStore
from examples.local_stack.kube_workloads import WorkloadRoutes

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


class KubeAPIEmulator(ConfigMapRoutes, WorkloadRoutes):
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


if __name__ == "__main__":  # python -m examples.local_stack.kube_api: serve until interrupted
    emulator = KubeAPIEmulator().start()
    print(json.dumps({"url": emulator.url}), flush=True)
    threading.Event().wait()
