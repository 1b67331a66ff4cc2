#!/bin/sh
# The pipeline's steps with the raw tools, as a hand-written CI job would run them: the baseline
# (a) of bench/pipeline_runs.py. A fresh clone, a frozen install with an empty cache, Wrangler's
# dry run, one boto3 put, kubectl kustomize of each overlay.
#   GIT_URL PROJECT_ROOT PM_DIR WORK ENDPOINT BUCKET KEY AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY PYTHON
set -eu
rm -rf "$WORK" && mkdir -p "$WORK/cache"
git clone --quiet --depth 1 "$GIT_URL" "$WORK/src"
cd "$WORK/src/$PM_DIR"
export npm_config_cache="$WORK/cache/npm" COREPACK_ENABLE_DOWNLOAD_PROMPT=0
if [ -f pnpm-lock.yaml ]; then
  corepack pnpm install --frozen-lockfile --store-dir "$WORK/cache/pnpm" >/dev/null
else
  npm ci --no-audit --no-fund >/dev/null
fi
cd "$WORK/src/$PROJECT_ROOT"
config=wrangler.toml
[ -f wrangler.jsonc ] && config=wrangler.jsonc
[ -f wrangler.json ] && config=wrangler.json
wrangler="$WORK/src/$PROJECT_ROOT/node_modules/.bin/wrangler"
[ -x "$wrangler" ] || wrangler="$WORK/src/$PM_DIR/node_modules/.bin/wrangler"
WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true "$wrangler" deploy --dry-run --config "$config" \
  --outdir "$WORK/src/$PROJECT_ROOT/dist" >/dev/null
"${PYTHON:-python3}" -c '
import os, sys, boto3
from botocore.config import Config
body = open(sys.argv[1], "rb").read()
boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="auto",
             config=Config(request_checksum_calculation="when_required")).put_object(
    Bucket=os.environ["BUCKET"], Key=os.environ["KEY"], Body=body)
' "$WORK/src/$PROJECT_ROOT/dist/index.js"
for overlay in "$WORK/src/$PROJECT_ROOT"/_kustomize/overlays/*/; do
  [ -d "$overlay" ] && kubectl kustomize "$overlay" >/dev/null
done
