#!/bin/sh
# Prepended to every stage script, in both execution modes, so both run the same bytes.
# Inputs arrive only as environment variables. Results are files in RESULTS_DIR (like Tekton
# results). In a pod, TERMINATION_LOG is the container's termination-message file, which the
# Kubernetes API keeps in the pod's status after the container ends: it receives the results as
# JSON on success, and the ERROR lines on failure.
set -eu
: "${RESULTS_DIR:?RESULTS_DIR is required}"
export NO_COLOR=1 FORCE_COLOR=0  # plain text in task logs and error messages
mkdir -p "$RESULTS_DIR"

fail() {
  echo "ERROR: $*" >&2
  if [ -n "${TERMINATION_LOG:-}" ]; then echo "ERROR: $*" >> "$TERMINATION_LOG"; fi
  exit 1
}

json_string() {
  # A JSON string from a file's content: escape backslashes and quotes, newlines as \n.
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' "$1" | awk 'BEGIN { ORS = "" } NR > 1 { print "\\n" } { print }'
}

results_json() {
  printf '{'
  separator=""
  for result in "$RESULTS_DIR"/*; do
    [ -f "$result" ] || continue
    printf '%s"%s": "%s"' "$separator" "$(basename "$result")" "$(json_string "$result")"
    separator=", "
  done
  printf '}'
}

on_exit() {
  status=$?
  if [ "$status" -eq 0 ] && [ -n "${TERMINATION_LOG:-}" ]; then results_json > "$TERMINATION_LOG"; fi
  exit "$status"
}
trap on_exit EXIT

# Local mode, a stage that fetches: this sandbox's network is a private loopback, and the worker's
# egress proxy a Unix socket bound in. A relay makes it 127.0.0.1:$CFW_EGRESS_PORT for the proxy
# variables the stage was given; git:// and ssh:// go through CFW_EGRESS_GIT_PROXY.
if [ -n "${CFW_EGRESS_SOCKET:-}" ]; then
  egress_ready="$HOME/.cfw-egress-ready"
  rm -f "$egress_ready"
  node -e "$CFW_EGRESS_RELAY" "$egress_ready" > /dev/null 2>&1 &
  printf '#!/bin/sh\nexec node -e "$CFW_EGRESS_CONNECT" "$1" "$2"\n' > "$CFW_EGRESS_GIT_PROXY"
  chmod 0755 "$CFW_EGRESS_GIT_PROXY"
  egress_tries=0
  until [ -f "$egress_ready" ]; do
    egress_tries=$((egress_tries + 1))
    [ "$egress_tries" -le 200 ] || fail "the egress relay did not start in the sandbox (it needs node on the worker)"
    sleep 0.05
  done
fi
