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
