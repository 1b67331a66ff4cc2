"""Where stage scripts run: ``local`` (a sandboxed process on the worker) or ``kubernetes`` (a pod)."""
