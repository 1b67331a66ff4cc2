#!/bin/sh
# docker-compose.yaml's airflow-volumes, run as root before airflow-init. Docker creates a named
# volume owned by root, mode 0755, when the image has no such path, and the Airflow services run as
# ${AIRFLOW_UID}:0, so they could not write there (airflow-init failed writing passwords.json).
# This gives every volume in AIRFLOW_VOLUMES to that user, as Airflow's own compose file does for
# its directories. The tests run this same file as root against root-owned directories.
set -eu
: "${AIRFLOW_UID:?the uid the Airflow services run as}"
: "${AIRFLOW_VOLUMES:?the mount points of the Airflow services named volumes, space-separated}"
case "$AIRFLOW_UID" in
  '' | *[!0-9]*) echo "prepare-volumes: AIRFLOW_UID must be a number, got '$AIRFLOW_UID'" >&2; exit 1 ;;
  0) echo "prepare-volumes: AIRFLOW_UID=0 would run Airflow and every build sandbox's owner as root; use e.g. 50000" >&2; exit 1 ;;
esac
[ "$(id -u)" = 0 ] || { echo "prepare-volumes: must run as root (it changes the volumes' owner)" >&2; exit 1; }

for volume in $AIRFLOW_VOLUMES; do
  mkdir -p "$volume"
  # -R: a volume kept from a stack that ran as another uid; chown -R does not follow symbolic links.
  chown -R "$AIRFLOW_UID:0" "$volume"
  chmod 0770 "$volume"
done
echo "airflow-volumes: $AIRFLOW_VOLUMES owned by $AIRFLOW_UID:0"
