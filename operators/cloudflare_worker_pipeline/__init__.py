"""Airflow operators that build Cloudflare Worker bundles and ship them to R2.

One module per pipeline stage; shared pieces: ``parameters`` (schema and validation),
``settings`` (deployment configuration), ``execution`` (where stage scripts run), ``r2`` and
``configmaps`` (the storage wrappers). Importing this package is cheap: provider hooks are
imported inside ``execute``.
"""
