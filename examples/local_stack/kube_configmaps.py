"""The Kubernetes API emulator's ConfigMaps: create, read, replace, merge and server-side apply
patches, delete; each write checks and bumps the resourceVersion like the API server does."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from examples.local_stack.kube_objects import matches, status


class ConfigMapRoutes:
    """Handlers for configmaps, mixed into :class:`KubeAPIEmulator`."""

    _store: Any
    _rv: Any
    _lock: Any
    _record: Any
    _stamp: Any
    _body: Any

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
