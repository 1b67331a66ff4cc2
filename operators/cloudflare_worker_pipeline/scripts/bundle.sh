# Runs after prelude.sh (set -eu, fail, results).
# Stage 3: bundle the worker with the project's own Wrangler, `wrangler deploy --dry-run`,
# and record the bundle's path, SHA-256 and size in RESULTS_DIR (bundle-path, content-hash,
# size-bytes). Wrangler's telemetry and banner are off so the build makes no outside call.
#   PROJECT_DIR   the project root (holds the Wrangler config)
#   INSTALL_DIR   where dependencies were installed (Wrangler runs from here)
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
# Wrangler leaves stale files in its outdir; start clean so only this build is in dist/.
rm -rf "$dist"

# The project's own Wrangler, never a download: node_modules/.bin in the project or install
# directory, or Yarn Plug'n'Play (which has no node_modules/.bin).
if [ -x "$PROJECT_DIR/node_modules/.bin/wrangler" ]; then
  set -- "$PROJECT_DIR/node_modules/.bin/wrangler"
elif [ -x "$INSTALL_DIR/node_modules/.bin/wrangler" ]; then
  set -- "$INSTALL_DIR/node_modules/.bin/wrangler"
elif [ -f "$INSTALL_DIR/.pnp.cjs" ]; then
  set -- corepack yarn wrangler
else
  fail "wrangler is not installed in $INSTALL_DIR: add wrangler to the project's devDependencies"
fi

cd "$INSTALL_DIR" || exit 1
echo "bundle: wrangler deploy --dry-run --config $config --outdir dist"
"$@" deploy --dry-run --config "$PROJECT_DIR/$config" --outdir "$dist" --metafile "$meta"

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

# Extra modules (.wasm, text, data) are imported by relative path: the bundle alone would break.
extra=$(cd "$dist" && for f in *; do
  case "$f" in "$bundle"|"$bundle.map"|README.md) ;; *) printf '%s ' "$f" ;; esac
done)
if [ -n "$extra" ]; then
  fail "Bundle dist/$bundle imports additional modules ($extra) that a single-file artifact cannot carry"
fi

sha256sum "$dist/$bundle" | cut -d' ' -f1 | tr -d '\n' > "$RESULTS_DIR/content-hash"
wc -c < "$dist/$bundle" | tr -d ' \n' > "$RESULTS_DIR/size-bytes"
printf '%s' "dist/$bundle" > "$RESULTS_DIR/bundle-path"
echo "bundle: dist/$bundle, $(cat "$RESULTS_DIR/size-bytes") bytes, sha256 $(cat "$RESULTS_DIR/content-hash")"
