#!/bin/sh
# The pipeline's steps with the raw tools, as a hand-written CI job would run them: the baselines
# of bench/pipeline_runs.py. A fresh clone, a frozen install, Wrangler's dry run, one boto3 put,
# kubectl kustomize of each overlay.
#   GIT_URL PROJECT_ROOT PM_DIR WORK ENDPOINT BUCKET KEY AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY PYTHON
#   RAW_MODE: cold (an empty package cache), warm (the cache in $CACHE kept from the last run), or
#   skip (a careful script's check that the commit is already built: git ls-remote, one HEAD).
set -eu
if [ "${RAW_MODE:-cold}" = skip ]; then
  commit=$(git ls-remote "$GIT_URL" HEAD | cut -f1)
  "${PYTHON:-python3}" -c '
import os, sys, boto3
head = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="auto").head_object(
    Bucket=os.environ["BUCKET"], Key=os.environ["KEY"])
sys.exit(0 if head["Metadata"].get("commit") == sys.argv[1] else 3)
' "$commit"
  exit 0
fi
CACHE=${CACHE:-$WORK/cache}
[ "${RAW_MODE:-cold}" = warm ] || rm -rf "$CACHE"
rm -rf "$WORK" && mkdir -p "$WORK" "$CACHE"
git clone --quiet --depth 1 "$GIT_URL" "$WORK/src"
cd "$WORK/src/$PM_DIR"
export npm_config_cache="$CACHE/npm" COREPACK_ENABLE_DOWNLOAD_PROMPT=0
if [ -f pnpm-lock.yaml ]; then
  corepack pnpm install --frozen-lockfile --store-dir "$CACHE/pnpm" >/dev/null
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
    Bucket=os.environ["BUCKET"], Key=os.environ["KEY"], Body=body, Metadata={"commit": sys.argv[2]})
' "$WORK/src/$PROJECT_ROOT/dist/index.js" "$(git -C "$WORK/src" rev-parse HEAD)"
for overlay in "$WORK/src/$PROJECT_ROOT"/_kustomize/overlays/*/; do
  [ -d "$overlay" ] && kubectl kustomize "$overlay" >/dev/null
done
