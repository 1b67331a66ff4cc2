"""An Airflow provider that builds Cloudflare Worker bundles, ships them to R2 and records them in
Kubernetes ConfigMaps.

``operators`` (one per stage), ``hooks`` (R2, ConfigMaps, claims), ``execution`` (where stage
scripts run: a bubblewrap sandbox or a pod), ``parameters``/``parameter_specs`` (the run's
parameters), ``settings`` (the deployment's, declared in ``get_provider_info``), ``example_dags``.
Importing the package is cheap: provider hooks are imported inside ``execute``.
"""
