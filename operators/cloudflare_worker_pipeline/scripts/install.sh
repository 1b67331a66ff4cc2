# Runs after prelude.sh (set -eu, fail, results).
# Stage 2: install dependencies in INSTALL_DIR with the package manager its lockfile names,
# frozen so the lockfile is the truth. Writes the manager's name to RESULTS_DIR/package-manager,
# and to RESULTS_DIR/toolchain "key=value" lines: package-manager-version, node-version, lockfile
# (its name in INSTALL_DIR) and lockfile-sha256.
#   INSTALL_DIR, RESULTS_DIR   required
#   DEPENDENCY_CACHE           optional: a directory shared between builds. Only stores the package
#                              manager verifies against the lockfile's integrity hashes go there:
#                              npm's cache (cacache) and pnpm's store (copied, never hard-linked).
# Detection order: yarn.lock, pnpm-lock.yaml, bun.lock or bun.lockb, package-lock.json, package.json alone.
# Yarn and pnpm run through corepack, which honours package.json's packageManager field.

: "${INSTALL_DIR:?INSTALL_DIR is required}"
cd "$INSTALL_DIR" || exit 1

package_manager_field() {
  [ -f package.json ] || return 0
  node -e 'const p = require(process.argv[1]); process.stdout.write(typeof p.packageManager === "string" ? p.packageManager : "")' "$PWD/package.json"
}

declared=$(package_manager_field)
if [ -n "$declared" ]; then
  echo "install: package.json declares packageManager $declared"
fi

if [ -f yarn.lock ]; then
  case "$declared" in
    yarn@1.*|"") berry=no ;;
    yarn@*) berry=yes ;;
    *) berry=no ;;
  esac
  [ -f .yarnrc.yml ] && berry=yes
  if [ "$berry" = yes ]; then
    manager="yarn-berry"
    # The cache inside the project, not in HOME: Plug'n'Play's .pnp.cjs and the bundle's module
    # comments then name it by a path relative to the project, the same in any directory.
    export YARN_ENABLE_GLOBAL_CACHE=false
    echo "install: yarn.lock with Yarn 2+ (.yarnrc.yml or packageManager yarn@2+): yarn install --immutable"
    set -- corepack yarn install --immutable
  else
    manager="yarn-classic"
    echo "install: yarn.lock with Yarn classic: yarn install --frozen-lockfile"
    set -- corepack yarn install --frozen-lockfile --non-interactive
  fi
elif [ -f pnpm-lock.yaml ]; then
  manager="pnpm"
  echo "install: pnpm-lock.yaml found: pnpm install --frozen-lockfile"
  set -- corepack pnpm install --frozen-lockfile
  if [ -n "${DEPENDENCY_CACHE:-}" ]; then
    # Copies, not hard links: a later write into node_modules must not reach the shared store.
    set -- "$@" --store-dir "$DEPENDENCY_CACHE/pnpm-store" --package-import-method copy --prefer-offline
  fi
elif [ -f bun.lock ] || [ -f bun.lockb ]; then
  manager="bun"
  command -v bun >/dev/null 2>&1 \
    || fail "a Bun lockfile ($(ls bun.lock bun.lockb 2>/dev/null | head -n 1)) but no bun on this worker: install Bun, or use the kubernetes mode (setting bun_image)"
  echo "install: Bun lockfile found: bun install --frozen-lockfile"
  # Bun runs no dependency's lifecycle scripts unless package.json trusts it (trustedDependencies).
  set -- bun install --frozen-lockfile
elif [ -f package-lock.json ]; then
  manager="npm"
  echo "install: package-lock.json found: npm ci"
  set -- npm ci
elif [ -f package.json ]; then
  manager="npm"
  echo "install: package.json without a lockfile: npm install (not reproducible; commit a lockfile)"
  set -- npm install
else
  echo "install: no package.json in $INSTALL_DIR: nothing to install, skipping"
  printf 'none' > "$RESULTS_DIR/package-manager"
  echo "node-version=$(node --version)" > "$RESULTS_DIR/toolchain"
  exit 0
fi

if [ -n "${DEPENDENCY_CACHE:-}" ]; then
  case "$manager" in
    # Not prefer-offline: with it npm fails on a cache entry a build corrupted instead of fetching it
    # again, so one hostile build could break every later one (tests/integration/test_dependency_cache.py).
    npm) export npm_config_cache="$DEPENDENCY_CACHE/npm"
         echo "install: npm cache in $DEPENDENCY_CACHE (shared; npm checks every entry's hash)" ;;
    pnpm) echo "install: pnpm store in $DEPENDENCY_CACHE (shared; pnpm checks every file; copied, not linked)" ;;
    *) echo "install: $manager keeps its cache in this run (Yarn 1 and Bun do not re-check cached packages; Yarn PnP bundles would name the cache's path)" ;;
  esac
fi

"$@"
printf '%s' "$manager" > "$RESULTS_DIR/package-manager"
echo "install: dependencies installed with $manager"

# The toolchain, for the build's provenance: the manager's version, the lockfile and its digest.
case "$1" in
  corepack) manager_version=$(corepack "$2" --version) ;;
  bun) manager_version=$(bun --version) ;;
  *) manager_version=$(npm --version) ;;
esac
lockfile=""
for candidate in yarn.lock pnpm-lock.yaml bun.lock bun.lockb package-lock.json; do
  if [ -f "$candidate" ]; then lockfile=$candidate; break; fi
done
{
  echo "package-manager-version=$manager_version"
  echo "node-version=$(node --version)"
  echo "lockfile=$lockfile"
  if [ -n "$lockfile" ]; then echo "lockfile-sha256=$(sha256sum < "$lockfile" | cut -d' ' -f1)"; fi
} > "$RESULTS_DIR/toolchain"
