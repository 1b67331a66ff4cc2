# Runs after prelude.sh (set -eu, fail, results).
# Stage 6: render every overlay under KUSTOMIZE_DIR/overlays with `kubectl kustomize`, one file
# per overlay in OUTPUT_DIR (<overlay>.yaml). No overlays directory renders nothing.
#   KUSTOMIZE_DIR, OUTPUT_DIR   required

: "${KUSTOMIZE_DIR:?KUSTOMIZE_DIR is required}" "${OUTPUT_DIR:?OUTPUT_DIR is required}"
mkdir -p "$OUTPUT_DIR"
# Empty it, not remove it: in the sandbox it is a mount point (a retry finds the last try's files).
find "$OUTPUT_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +

overlays="$KUSTOMIZE_DIR/overlays"
if [ ! -d "$overlays" ]; then
  echo "kustomize: no overlays directory at $overlays: nothing to render"
  exit 0
fi

for dir in "$overlays"/*/; do
  [ -d "$dir" ] || continue
  name=$(basename "$dir")
  if ! kubectl kustomize "$dir" > "$OUTPUT_DIR/$name.yaml" 2> "$OUTPUT_DIR/$name.err"; then
    fail "kustomize build failed for overlay $name: $(cat "$OUTPUT_DIR/$name.err")"
  fi
  rm -f "$OUTPUT_DIR/$name.err"
  echo "kustomize: rendered overlay $name ($(wc -c < "$OUTPUT_DIR/$name.yaml" | tr -d ' ') bytes)"
done
