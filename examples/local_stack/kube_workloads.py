"""The Kubernetes API emulator's pods, their logs and events, and PersistentVolumeClaims: routes
mixed into :class:`KubeAPIEmulator` (which holds the stores, the lock and the object semantics)."""

from __future__ import annotations

import asyncio
import copy
import shutil
from typing import Any

from aiohttp import web

from examples.local_stack.kube_objects import matches, status


class WorkloadRoutes:
    """Handlers for pods, pods/log, events and persistentvolumeclaims."""

    pod_store: Any
    _lock: Any
    _rv: Any
    claims_root: Any
    _record: Any
    _stamp: Any
    _body: Any

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

