# Runs after prelude.sh (set -eu, fail, results).
# The TypeScript type check, beside the bundle: the project's own `tsc --noEmit` against its
# tsconfig.json. Writes RESULTS_DIR/typescript: "checked", "off", "no-tsconfig" or "no-typescript".
#   PROJECT_DIR        the project root (holds tsconfig.json)
#   INSTALL_DIR        where dependencies were installed (tsc is found there or in PROJECT_DIR)
#   TYPESCRIPT_CHECK   auto (check when there is a tsconfig.json and TypeScript), on (must check) or off

: "${PROJECT_DIR:?PROJECT_DIR is required}" "${INSTALL_DIR:?INSTALL_DIR is required}"
mode="${TYPESCRIPT_CHECK:-auto}"

skip() {
  echo "typecheck: $2"
  printf '%s' "$1" > "$RESULTS_DIR/typescript"
  exit 0
}

[ "$mode" = off ] && skip off "typescript-check is off"
if [ ! -f "$PROJECT_DIR/tsconfig.json" ]; then
  [ "$mode" = on ] && fail "typescript-check is on, but the project root has no tsconfig.json"
  skip no-tsconfig "no tsconfig.json in the project root: nothing to check"
fi

# The project's own compiler, never a download.
if [ -x "$PROJECT_DIR/node_modules/.bin/tsc" ]; then
  set -- "$PROJECT_DIR/node_modules/.bin/tsc"
elif [ -x "$INSTALL_DIR/node_modules/.bin/tsc" ]; then
  set -- "$INSTALL_DIR/node_modules/.bin/tsc"
elif [ -f "$INSTALL_DIR/.pnp.cjs" ] && (cd "$INSTALL_DIR" && corepack yarn bin tsc >/dev/null 2>&1); then
  set -- corepack yarn tsc
else
  [ "$mode" = on ] && fail "typescript-check is on, but TypeScript is not installed: add typescript to the project's devDependencies"
  skip no-typescript "tsconfig.json but no TypeScript installed: nothing to check with"
fi

cd "$PROJECT_DIR" || exit 1
echo "typecheck: tsc --noEmit -p tsconfig.json ($("$@" --version))"
report="$(mktemp -d)/tsc.txt"
if ! "$@" --noEmit --incremental false --pretty false -p tsconfig.json > "$report" 2>&1; then
  cat "$report"
  count=$(grep -c 'error TS[0-9]' "$report" || true)
  fail "TypeScript found ${count:-some} error(s): $(grep 'error TS[0-9]' "$report" | head -n 20 | tr '\n' ' ')"
fi
cat "$report"
printf 'checked' > "$RESULTS_DIR/typescript"
echo "typecheck: no type errors"
