# Runs after prelude.sh (set -eu, fail, results).
# Stage 3: bundle the worker with the project's own Wrangler, `wrangler deploy --dry-run`,
# and record the bundle's path, SHA-256 and size in RESULTS_DIR (bundle-path, content-hash,
# size-bytes). Wrangler's telemetry and banner are off so the build makes no outside call.
# Also recorded: wrangler-version, compressed-sizes ("<gzip> <brotli>" bytes of the bundle), files (each other file
# Wrangler wrote beside it: "<sha256> <size> <gzip size> <name>" per line: additional modules and
# the source map), report (the inputs that weigh most in the bundle, from esbuild's metafile, JSON)
# and durable-objects (the config's Durable Object bindings and migrations, JSON,
# or null when the project's Wrangler cannot say).
#   PROJECT_DIR   the project root (holds the Wrangler config)
#   INSTALL_DIR   where dependencies were installed (Wrangler runs from here)
#   SOURCE_MAPS   "true" (default) has Wrangler write the source map beside the bundle
#   WRANGLER_EXTRA_ARGS   optional: more Wrangler flags, one argument per line (validated)
#   BUILD_COMMAND         optional: a command run in PROJECT_DIR first, one argument per line
#   REPRODUCIBILITY_CHECK "true": bundle a copy of CHECKOUT_DIR again in a fresh directory and write
#                         RESULTS_DIR/reproducibility: "identical", or "differs <file>..."
#                         RESULTS_DIR/inputs: the files esbuild read, one per line
#   RESULTS_DIR   required

: "${PROJECT_DIR:?PROJECT_DIR is required}" "${INSTALL_DIR:?INSTALL_DIR is required}"
:
export WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true

# Wrangler itself prefers wrangler.json, then wrangler.jsonc, then wrangler.toml.
config=""
for candidate in wrangler.json wrangler.jsonc wrangler.toml; do
  if [ -f "$PROJECT_DIR/$candidate" ]; then
    if [ -z "$config" ]; then config="$candidate"; else
      echo "bundle: warning: $candidate ignored, Wrangler reads $config first"; fi
  fi
done
if [ -z "$config" ]; then
  fail "wrangler.toml not found in project root"
fi
echo "bundle: using $config"

dist="$PROJECT_DIR/dist"
# Scratch, not a result: the run's own temporary directory (a fresh /tmp in the sandbox and in pods).
meta="$(mktemp -d)/esbuild-metafile.json"
if [ "${SOURCE_MAPS:-true}" = true ]; then maps="--upload-source-maps"; else maps="--upload-source-maps=false"; fi

# Arguments arrive one per line and become positional parameters as they are: no splitting on
# spaces, no globbing, never evaluated.
with_lines() {
  set -f
  old_ifs=$IFS
  IFS='
'
  # shellcheck disable=SC2086
  set -- "$@" $ARG_LINES
  IFS=$old_ifs
  set +f
  "$@"
}

# The project's own Wrangler, never a download: node_modules/.bin in the project or install
# directory, or Yarn Plug'n'Play (which has no node_modules/.bin), printed as "pnp".
find_wrangler() {
  if [ -x "$1/node_modules/.bin/wrangler" ]; then printf '%s' "$1/node_modules/.bin/wrangler"
  elif [ -x "$2/node_modules/.bin/wrangler" ]; then printf '%s' "$2/node_modules/.bin/wrangler"
  elif [ -f "$2/.pnp.cjs" ]; then printf 'pnp'
  else return 1; fi
}

run_wrangler() {  # run_wrangler <found> <argument>...: with the extra arguments in ARG_LINES appended
  found=$1
  shift
  if [ "$found" = pnp ]; then with_lines corepack yarn wrangler "$@"; else with_lines "$found" "$@"; fi
}

# One build: the build command in the project root, then Wrangler, into <project dir>/dist.
#   build <project dir> <install dir> <dist: that directory, emptied first> <metafile>
build() {
  found=$(find_wrangler "$1" "$2") || fail "wrangler is not installed in $2: add wrangler to the project's devDependencies"
  # Wrangler leaves stale files in its outdir; start clean so only this build is in dist/.
  rm -rf "$3"
  if [ -n "${BUILD_COMMAND:-}" ]; then
    echo "bundle: build command: $(printf '%s' "$BUILD_COMMAND" | tr '\n' ' ')"
    program=$(printf '%s\n' "$BUILD_COMMAND" | head -n 1)
    case "$program" in yarn|pnpm) runner="corepack" ;; *) runner="" ;; esac
    (
      cd "$1" || exit 1
      PATH="$1/node_modules/.bin:$2/node_modules/.bin:$PATH"
      export PATH
      ARG_LINES=$BUILD_COMMAND
      if [ -n "$runner" ]; then with_lines "$runner"; else with_lines; fi
    ) || fail "build command failed: $(printf '%s' "$BUILD_COMMAND" | tr '\n' ' ')"
  fi
  extra=$(printf '%s' "${WRANGLER_EXTRA_ARGS:-}" | tr '\n' ' ')
  # From the project root with --outdir dist, as the spec runs it: an absolute outdir would become
  # the source map's sourceRoot, naming this machine's path and differing in every directory.
  echo "bundle: wrangler deploy --dry-run --config $config --outdir dist $maps${extra:+ $extra}"
  (cd "$1" && ARG_LINES=${WRANGLER_EXTRA_ARGS:-} &&
    run_wrangler "$found" deploy --dry-run --config "$1/$config" --outdir dist --metafile "$4" "$maps")
}

# A second bundle of the same checkout, in a fresh directory, when asked: copied before the first
# build touches anything, so both start from the same files.
if [ "${REPRODUCIBILITY_CHECK:-false}" = true ]; then
  : "${CHECKOUT_DIR:?CHECKOUT_DIR is required for the reproducibility check}"
  fresh="$(mktemp -d)/source"
  cp -a "$CHECKOUT_DIR" "$fresh"
fi

found=$(find_wrangler "$PROJECT_DIR" "$INSTALL_DIR") \
  || fail "wrangler is not installed in $INSTALL_DIR: add wrangler to the project's devDependencies"
# Wrangler's version from its package.json (starting Wrangler costs most of a second); from the
# CLI when the package does not say.
version='process.stdout.write(require(require("module").createRequire(process.argv[1] + "/").resolve("wrangler/package.json")).version)'
if [ "$found" = pnp ]; then set -- corepack yarn node; else set -- node; fi
if ! (cd "$INSTALL_DIR" && "$@" -e "$version" "$PROJECT_DIR" > "$RESULTS_DIR/wrangler-version" 2>/dev/null); then
  (cd "$INSTALL_DIR" && ARG_LINES="" && run_wrangler "$found" --version) | tail -n 1 | tr -d '\n' \
    > "$RESULTS_DIR/wrangler-version"
fi
build "$PROJECT_DIR" "$INSTALL_DIR" "$dist" "$meta"
cd "$INSTALL_DIR" || exit 1

# The config as Wrangler itself reads it (the project's own Wrangler package), for the Durable
# Objects it declares; Yarn PnP resolves packages only through `yarn node`.
facts='
  const { createRequire } = require("module");
  const load = createRequire(process.argv[1] + "/").resolve("wrangler");
  const config = require(load).unstable_readConfig({ config: process.argv[2] }, { hideWarnings: true });
  const objects = (config.durable_objects && config.durable_objects.bindings) || [];
  process.stdout.write(JSON.stringify({
    bindings: objects.map((b) => ({ name: b.name, class_name: b.class_name, script_name: b.script_name || null })),
    migrations: (config.migrations || []).map((m) => ({ tag: m.tag, new_classes: m.new_classes || [],
      new_sqlite_classes: m.new_sqlite_classes || [], renamed_classes: m.renamed_classes || [],
      deleted_classes: m.deleted_classes || [] })),
  }));'
if [ -f "$INSTALL_DIR/.pnp.cjs" ]; then set -- corepack yarn node; else set -- node; fi
if ! grep -Eq 'durable_objects|migrations' "$PROJECT_DIR/$config"; then
  printf '{"bindings": [], "migrations": []}' > "$RESULTS_DIR/durable-objects"  # none, without loading Wrangler
elif ! "$@" -e "$facts" "$PROJECT_DIR" "$PROJECT_DIR/$config" > "$RESULTS_DIR/durable-objects"; then
  echo "bundle: warning: this Wrangler cannot list the config's Durable Objects (unstable_readConfig)"
  printf 'null' > "$RESULTS_DIR/durable-objects"
fi

# The bundle is the output esbuild built from the entry point; it is named after the entry.
bundle=""
if [ -f "$meta" ]; then
  bundle=$(node -e '
    const outputs = require(process.argv[1]).outputs || {};
    const entry = Object.keys(outputs).find((o) => outputs[o].entryPoint && o.endsWith(".js"));
    process.stdout.write(entry ? require("path").basename(entry) : "");
  ' "$meta")
fi
# With `no_bundle = true` there is no metafile: Wrangler copies the entry as it is.
if [ -z "$bundle" ]; then
  set -- "$dist"/*.js
  if [ -f "$dist/index.js" ]; then bundle="index.js"
  elif [ "$#" -eq 1 ] && [ -f "$1" ]; then bundle=$(basename "$1"); fi
fi
if [ -z "$bundle" ] || [ ! -f "$dist/$bundle" ]; then
  fail "Bundle not created at dist/${bundle:-index.js}"
fi

# What weighs most in the bundle: esbuild's bytes per input in this output, largest first.
if [ -f "$meta" ]; then
  node -e '
    const outputs = require(process.argv[1]).outputs || {};
    const name = process.argv[2];
    const output = Object.keys(outputs).find((o) => o === name || o.endsWith("/" + name));
    const inputs = output ? outputs[output].inputs || {} : {};
    const rows = Object.entries(inputs).map(([input, facts]) => ({ input, bytes: facts.bytesInOutput || 0 }));
    rows.sort((a, b) => b.bytes - a.bytes || (a.input < b.input ? -1 : 1));
    process.stdout.write(JSON.stringify(rows.slice(0, 25)));
  ' "$meta" "$bundle" > "$RESULTS_DIR/report"
else
  printf '[]' > "$RESULTS_DIR/report"  # no_bundle: Wrangler did not run esbuild
fi
# Every file esbuild read, one per line, relative to the project root: the worker checks that the
# fingerprint saw them all (a ../shared import is outside the trees it hashes).
if [ -f "$meta" ]; then
  node -e 'process.stdout.write(Object.keys(require(process.argv[1]).inputs || {}).join("\n"))' "$meta" \
    > "$RESULTS_DIR/inputs"
else
  : > "$RESULTS_DIR/inputs"  # no_bundle: the project's own files, as they are
fi

# Sizes as Cloudflare counts them (gzip, as Wrangler's "Total Upload") and as served (brotli).
sizes='
  const fs = require("fs"), zlib = require("zlib");
  const body = fs.readFileSync(process.argv[1]);
  process.stdout.write(zlib.gzipSync(body).length + " " + zlib.brotliCompressSync(body).length);'
node -e "$sizes" "$dist/$bundle" > "$RESULTS_DIR/compressed-sizes"

# Every other file Wrangler wrote is part of the worker: additional modules (.wasm, text, data),
# which the bundle imports by relative path, and the source map. Wrangler names modules
# "<sha1>-<name>"; anything else in dist/ (a directory, a link) is refused by the stage.
: > "$RESULTS_DIR/files"
for path in "$dist"/* "$dist"/.[!.]*; do
  [ -e "$path" ] || [ -L "$path" ] || continue
  name=${path##*/}
  case "$name" in "$bundle"|README.md) continue ;; esac
  if [ -L "$path" ] || [ ! -f "$path" ]; then
    fail "Bundle output dist/$name is not a regular file"
  fi
  gz=$(node -e 'process.stdout.write(String(require("zlib").gzipSync(require("fs").readFileSync(process.argv[1])).length))' "$path")
  printf '%s %s %s %s\n' "$(sha256sum < "$path" | cut -d' ' -f1)" "$(wc -c < "$path" | tr -d ' ')" "$gz" "$name" \
    >> "$RESULTS_DIR/files"
done

if [ "${REPRODUCIBILITY_CHECK:-false}" = true ]; then
  echo "bundle: reproducibility check: the same checkout bundled again in $fresh"
  in_fresh() { if [ "$1" = "$CHECKOUT_DIR" ]; then printf '%s' "$fresh"; else printf '%s/%s' "$fresh" "${1#"$CHECKOUT_DIR"/}"; fi; }
  again=$(in_fresh "$PROJECT_DIR")
  differing=""
  if ! (build "$again" "$(in_fresh "$INSTALL_DIR")" "$again/dist" "$(mktemp -d)/esbuild-metafile.json"); then
    differing=" (the second build failed)"
  fi
  for path in "$dist"/* "$again/dist"/*; do
    [ -n "$differing" ] && [ "$differing" = " (the second build failed)" ] && break
    name=${path##*/}
    [ "$name" = README.md ] && continue  # Wrangler stamps it with the time
    case " $differing " in *" $name "*) continue ;; esac
    if ! cmp -s "$dist/$name" "$again/dist/$name"; then differing="$differing $name"; fi
  done
  if [ -z "$differing" ]; then
    printf 'identical' > "$RESULTS_DIR/reproducibility"
    echo "bundle: reproducible: a second build in another directory wrote the same bytes"
  else
    printf 'differs%s' "$differing" > "$RESULTS_DIR/reproducibility"
    echo "bundle: warning: not reproducible: a second build in another directory differs in:$differing"
  fi
else
  printf 'not-checked' > "$RESULTS_DIR/reproducibility"
fi

sha256sum "$dist/$bundle" | cut -d' ' -f1 | tr -d '\n' > "$RESULTS_DIR/content-hash"
wc -c < "$dist/$bundle" | tr -d ' \n' > "$RESULTS_DIR/size-bytes"
printf '%s' "dist/$bundle" > "$RESULTS_DIR/bundle-path"
echo "bundle: dist/$bundle, $(cat "$RESULTS_DIR/size-bytes") bytes, sha256 $(cat "$RESULTS_DIR/content-hash")"
