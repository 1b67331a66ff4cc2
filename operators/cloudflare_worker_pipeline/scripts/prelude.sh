#!/bin/sh
# Prepended to every stage script, in both execution modes, so both run the same bytes.
# Inputs arrive only as environment variables. Results are files in RESULTS_DIR (like Tekton
# results), which the worker reads in both modes (a pod's RESULTS_DIR is on the run's claim, which
# the worker mounts too). In a pod, TERMINATION_LOG is the container's termination-message file,
# which the Kubernetes API keeps in the pod's status: it receives the ERROR lines on failure.
set -eu
: "${RESULTS_DIR:?RESULTS_DIR is required}"
export NO_COLOR=1 FORCE_COLOR=0  # plain text in task logs and error messages
mkdir -p "$RESULTS_DIR"
rm -f "$RESULTS_DIR"/*  # a retry's results are its own, never an earlier try's

fail() {
  echo "ERROR: $*" >&2
  if [ -n "${TERMINATION_LOG:-}" ]; then echo "ERROR: $*" >> "$TERMINATION_LOG"; fi
  exit 1
}

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
