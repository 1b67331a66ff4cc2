"""Airflow plugin module for a ``plugins_folder`` deployment: the pipeline's extra links.

Installed with pip, the package's ``airflow.plugins`` entry point registers the plugin, and this
file defines nothing (Airflow reports a second registration of one name as an import error). With
the package only on ``PYTHONPATH``, this file registers it. Named apart from the package on
purpose: Airflow loads a plugin file as a module named after the file, which would shadow it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(entry.name == "cloudflare_worker_pipeline" for entry in entry_points(group="airflow.plugins")):
    from cloudflare_worker_pipeline.plugin import CloudflareWorkerPipelinePlugin

    __all__ = ["CloudflareWorkerPipelinePlugin"]
