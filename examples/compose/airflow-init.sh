#!/bin/sh
# docker-compose.yaml's airflow-init: run once before the other Airflow services start.
# Migrates the metadata database, writes the admin's password for the simple auth manager, creates
# the pipeline's pool when one is set, and checks the provider's settings parse. The tests run this
# same file outside Docker, against a local PostgreSQL.
set -eu
: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?the metadata database}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?where the admin password goes}"
: "${_AIRFLOW_WWW_USER_PASSWORD:?the admin password}"

airflow db migrate

passwords="$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
mkdir -p "$(dirname "$passwords")"
# Mode 0600: only the Airflow user reads the admin's password.
(umask 077 && python3 -c 'import json, os, sys; json.dump({"admin": os.environ["_AIRFLOW_WWW_USER_PASSWORD"]}, open(sys.argv[1], "w"))' \
  "$passwords")
chmod 0600 "$passwords"

pool="${AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__POOL:-}"
if [ -n "$pool" ]; then
  airflow pools set "$pool" "${PIPELINE_POOL_SLOTS:-4}" "Cloudflare Worker builds"
fi

# Fails here, not in the first run, when a setting is misspelt or malformed.
python3 -c 'from cloudflare_worker_pipeline.settings import PipelineSettings; PipelineSettings.from_airflow_config()'
echo "airflow-init: database migrated, admin password written${pool:+, pool $pool created}"
