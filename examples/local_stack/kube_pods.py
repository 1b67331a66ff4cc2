"""Pods and PersistentVolumeClaims for the Kubernetes API emulator.

A pod "runs" by executing its base container's command as a local process, with the container's
environment, and with each volume mount mapped to a local directory: a claim to
``<claims_root>/<claim name>[/<subPath>]``, an emptyDir to a per-pod directory, the termination
message file to a per-pod file. Paths in the environment and arguments that start with a mount
path are rewritten to the mapped directory (images are not pulled: the local tools stand in).
The pod moves Pending -> Running -> Succeeded or Failed with the real exit code, its output is
its log, and ``activeDeadlineSeconds`` kills it with reason DeadlineExceeded.
"""

from __future__ import annotations

import copy
import datetime
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HOST_ENV = ("PATH", "LANG")  # what a container image would provide; the local tools need them


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class PodRun:
    """One pod's local execution and its log."""

    def __init__(self, pod: dict[str, Any], claims_root: Path, pods_root: Path, on_change: Any) -> None:
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.claims_root = claims_root
        self.work_dir = pods_root / self.uid
        self.log_lines: list[str] = []
        self.finished = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.on_change = on_change
        self.deadline_exceeded = False
        self.thread = threading.Thread(target=self._run, name=f"pod-{pod['metadata']['name']}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    # -- mapping the container onto this machine --------------------------------------------
    def _mounts(self, container: dict[str, Any]) -> list[tuple[str, Path]]:
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes", [])}
        mounts: list[tuple[str, Path]] = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                local = self.claims_root / volume["persistentVolumeClaim"]["claimName"]
            else:  # emptyDir and anything else: a fresh directory per pod
                local = self.work_dir / "volumes" / mount["name"]
            if mount.get("subPath"):
                local = local / mount["subPath"]
            local.mkdir(parents=True, exist_ok=True)
            mounts.append((mount["mountPath"], local))
        termination = container.get("terminationMessagePath", "/dev/termination-log")
        mounts.append((termination, self.work_dir / "termination-log"))
        return sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    @staticmethod
    def _map(value: str, mounts: list[tuple[str, Path]]) -> str:
        for mount_path, local in mounts:
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                return str(local) + value[len(mount_path):]
        return value

    def _run(self) -> None:
        container = self.pod["spec"]["containers"][0]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        mounts = self._mounts(container)
        env = {key: os.environ[key] for key in HOST_ENV if key in os.environ}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = self._map(item["value"], mounts)
        argv = [self._map(a, mounts) for a in container.get("command", []) + container.get("args", [])]
        cwd = self._map(container["workingDir"], mounts) if container.get("workingDir") else str(self.work_dir)
        time.sleep(0.2)  # scheduling
        started = now()
        self._set_status("Running", [{"name": container["name"], "ready": True, "restartCount": 0,
                                       "image": container["image"], "imageID": f"emulator://{container['image']}",
                                       "state": {"running": {"startedAt": started}}}])
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        self.process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        timer = threading.Timer(deadline, self._deadline) if deadline else None
        if timer:
            timer.start()
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.log_lines.append(f"{log_timestamp()} {raw.decode(errors='replace').rstrip()}")
        code = self.process.wait()
        if timer:
            timer.cancel()
        termination_file = self.work_dir / "termination-log"
        message = termination_file.read_text()[:4096] if termination_file.exists() else ""
        exit_code = 137 if code < 0 else code
        state = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                "message": message, "startedAt": started, "finishedAt": now()}}
        statuses = [{"name": container["name"], "ready": False, "restartCount": 0, "image": container["image"],
                     "imageID": f"emulator://{container['image']}",
                     "state": state}]
        phase = "Succeeded" if exit_code == 0 and not self.deadline_exceeded else "Failed"
        self._set_status(phase, statuses, reason="DeadlineExceeded" if self.deadline_exceeded else None)
        self.finished.set()

    def _deadline(self) -> None:
        self.deadline_exceeded = True
        self.kill()

    def _set_status(self, phase: str, container_statuses: list[dict[str, Any]], reason: str | None = None) -> None:
        status = self.pod["status"]
        status["phase"] = phase
        status["containerStatuses"] = container_statuses
        if reason:
            status["reason"] = reason
        self.on_change(self.pod)


class PodStore:
    """Pods, their runs and events, and claims, as the emulator holds them."""

    def __init__(self, claims_root: Path, pods_root: Path) -> None:
        self.claims_root = claims_root
        self.pods_root = pods_root
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.runs: dict[str, PodRun] = {}
        self.events: list[dict[str, Any]] = []
        self.claims: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted_pods: list[dict[str, Any]] = []  # specs of every pod ever deleted, for tests

    def create_pod(self, namespace: str, pod: dict[str, Any], stamp: Any) -> dict[str, Any]:
        name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "pod-") + uuid.uuid4().hex[:5]
        pod["metadata"]["name"] = name
        stamp(pod, namespace, None, kind="Pod")
        pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                         "startTime": now()}
        self.pods[(namespace, name)] = pod
        self._event(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to emulator-node")
        run = PodRun(pod, self.claims_root, self.pods_root, on_change=lambda p: stamp(p, namespace, p, kind="Pod"))
        self.runs[pod["metadata"]["uid"]] = run
        self._event(pod, "Started", f"Started container {pod['spec']['containers'][0]['name']}")
        run.start()
        return pod

    def delete_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        pod = self.pods.pop((namespace, name), None)
        if pod is not None:
            self.runs[pod["metadata"]["uid"]].kill()
            self.deleted_pods.append(copy.deepcopy(pod))
        return pod

    def _event(self, pod: dict[str, Any], reason: str, message: str) -> None:
        meta = pod["metadata"]
        self.events.append({
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:8]}", "namespace": meta["namespace"],
                         "uid": str(uuid.uuid4()), "resourceVersion": meta["resourceVersion"]},
            "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"], "fieldPath": "spec.containers{base}"},
            "reason": reason, "message": message, "type": "Normal", "firstTimestamp": now(), "lastTimestamp": now(),
            "count": 1,
        })
