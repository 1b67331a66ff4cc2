# Runs after prelude.sh (set -eu, fail, results).
# Stage 2: install dependencies in INSTALL_DIR with the package manager its lockfile names, frozen
# so the lockfile is the truth, in two phases, each its own sandbox or pod:
#   INSTALL_PHASE=fetch     the package manager alone, with every script and hook off
#                           (--ignore-scripts, --ignore-pnpmfile, Yarn's skip-build, no yarnPath,
#                           no Yarn plugins unless allowed): the only phase with a network, and that only to the
#                           registries, through the egress proxy. Writes RESULTS_DIR/package-manager
#                           and RESULTS_DIR/toolchain ("key=value": package-manager-version,
#                           node-version, lockfile, lockfile-sha256).
#   INSTALL_PHASE=scripts   the install scripts the fetch left out (dependencies' and the root
#                           package's own lifecycle scripts), with no network at all. Writes
#                           RESULTS_DIR/install-scripts: what ran.
#   INSTALL_DIR, RESULTS_DIR   required
#   INSTALL_SCRIPTS         run (every script), allowlist (INSTALL_SCRIPT_PACKAGES only; the root
#                           package's own scripts when its name is listed) or none.
#   INSTALL_YARN_CODE       refuse (default: Yarn plugins refused, yarnPath ignored) or allow (both
#                           run, in both phases; setting allow_yarn_repository_code).
#   DEPENDENCY_CACHE_MAX_MB the cache's quota: a fuller cache is emptied before the fetch.
#   DEPENDENCY_CACHE        optional, fetch phase only: a directory shared between builds, which no
#                           repository code ever sees writable. Only stores the package manager
#                           verifies against the lockfile's integrity hashes go there: npm's cache
#                           (cacache) and pnpm's store (copied, never hard-linked).
# Detection order: yarn.lock, pnpm-lock.yaml, bun.lock or bun.lockb, package-lock.json, package.json alone.
# Yarn and pnpm run through corepack, which honours package.json's packageManager field.

: "${INSTALL_DIR:?INSTALL_DIR is required}"
phase="${INSTALL_PHASE:-fetch}"
scripts_mode="${INSTALL_SCRIPTS:-run}"
cd "$INSTALL_DIR" || exit 1

package_manager_field() {
  [ -f package.json ] || return 0
  node -e 'const p = require(process.argv[1]); process.stdout.write(typeof p.packageManager === "string" ? p.packageManager : "")' "$PWD/package.json"
}

package_name() {
  node -e 'const p = require(process.argv[1]); process.stdout.write(typeof p.name === "string" ? p.name : "")' "$PWD/package.json"
}

yarn_code="${INSTALL_YARN_CODE:-refuse}"

# Yarn 2+ loads the plugins its .yarnrc.yml files name (each directory up from the project, and the
# home): code of the repository's choosing, run before any flag of ours applies. Refused unless
# allowed; yarnPath is ignored instead (YARN_IGNORE_PATH), so the Yarn that runs is corepack's,
# from packageManager.
refuse_yarn_plugins() {
  [ "$yarn_code" = allow ] && return 0
  dir=$PWD
  while :; do
    if [ -f "$dir/.yarnrc.yml" ] && grep -q 'plugins' "$dir/.yarnrc.yml"; then
      fail "$dir/.yarnrc.yml names Yarn plugins: repository code Yarn would run while fetching, with the network; the pipeline runs no Yarn plugins (Yarn 4 has the official ones built in): remove them, or allow them with the setting allow_yarn_repository_code"
    fi
    [ "$dir" = / ] && break
    dir=$(dirname "$dir")
  done
}

# The root package's own lifecycle scripts of those named in ROOT_SCRIPTS (in the order npm ci runs
# them), each by name (npm's --ignore-scripts then skips its pre- and post- ones, named here
# themselves); allowlist mode runs them only when the package's name is listed.
ROOT_SCRIPTS="preinstall install postinstall preprepare prepare postprepare"
run_root_scripts() {
  [ -f package.json ] || return 0
  if [ "$scripts_mode" = allowlist ]; then
    listed " $(package_name) " || { echo "install: the root package's own scripts are not on the allowlist"; return 0; }
  fi
  present=$(node -e 'const s = require(process.argv[1]).scripts || {};
    process.stdout.write(process.argv.slice(2).filter((name) => typeof s[name] === "string").join(" "))' \
    "$PWD/package.json" $ROOT_SCRIPTS)
  for script in $present; do
    "$@" "$script"
  done
}

# The version of the Yarn or pnpm corepack runs here, asked outside the project: pnpm loads the
# project's .pnpmfile.cjs even for --version (--ignore-pnpmfile or not).
corepack_version() {
  if [ "$yarn_code" = allow ] && [ "$manager" = yarn-berry ]; then
    corepack yarn --version  # the repository's yarnPath, when it names one
    return
  fi
  spec=$1
  case "$declared" in
    "$1"@*) spec=$declared ;;
  esac
  (cd "$HOME" && corepack "$spec" --version)
}

listed() {
  case " $INSTALL_SCRIPT_PACKAGES " in
    *"$1"*) return 0 ;;
  esac
  return 1
}

declared=$(package_manager_field)
if [ -n "$declared" ] && [ "$phase" = fetch ]; then
  echo "install: package.json declares packageManager $declared"
fi

# Yarn: the cache inside the project, not in HOME: Plug'n'Play's .pnp.cjs and the bundle's module
# comments then name it by a path relative to the project, the same in any directory. The
# repository's yarnPath is run only when allowed.
export YARN_ENABLE_GLOBAL_CACHE=false
case "$yarn_code" in
  allow) unset YARN_IGNORE_PATH
         if [ "$phase" = fetch ] && [ -f .yarnrc.yml ]; then
           echo "install: Yarn plugins and yarnPath are allowed (setting allow_yarn_repository_code): the repository's own Yarn code runs in the fetch, which reaches only the registries"
         fi ;;
  refuse) export YARN_IGNORE_PATH=1 ;;
  *) fail "INSTALL_YARN_CODE must be allow or refuse, not $yarn_code" ;;
esac

if [ -f yarn.lock ]; then
  case "$declared" in
    yarn@1.*|"") berry=no ;;
    yarn@*) berry=yes ;;
    *) berry=no ;;
  esac
  [ -f .yarnrc.yml ] && berry=yes
  if [ "$berry" = yes ]; then
    manager="yarn-berry"
  else
    manager="yarn-classic"
  fi
elif [ -f pnpm-lock.yaml ]; then
  manager="pnpm"
elif [ -f bun.lock ] || [ -f bun.lockb ]; then
  manager="bun"
  command -v bun >/dev/null 2>&1 \
    || fail "a Bun lockfile ($(ls bun.lock bun.lockb 2>/dev/null | head -n 1)) but no bun on this worker: install Bun, or use the kubernetes mode (setting bun_image)"
elif [ -f package-lock.json ] || [ -f package.json ]; then
  manager="npm"
else
  echo "install: no package.json in $INSTALL_DIR: nothing to install, skipping"
  if [ "$phase" = fetch ]; then
    printf 'none' > "$RESULTS_DIR/package-manager"
    echo "node-version=$(node --version)" > "$RESULTS_DIR/toolchain"
  else
    printf 'none' > "$RESULTS_DIR/install-scripts"
  fi
  exit 0
fi

if [ "$phase" = scripts ]; then
  # No network here: every registry variable points nowhere, so a tool that tries says so at once.
  export YARN_ENABLE_NETWORK=0 npm_config_offline=true COREPACK_ENABLE_NETWORK=0
  if [ "$scripts_mode" = none ]; then
    echo "install: install scripts are off (setting install_scripts = none)"
    printf 'none' > "$RESULTS_DIR/install-scripts"
    exit 0
  fi
  if [ "$scripts_mode" = run ]; then
    echo "install: running install scripts offline (dependencies' and the root package's own)"
    # Each manager's own way to run what its fetch left out; each also runs the root's scripts.
    case "$manager" in
      npm)  # npm rebuild runs the root's install scripts too, but not its prepare ones
        npm rebuild
        ROOT_SCRIPTS="preprepare prepare postprepare"
        run_root_scripts npm run --ignore-scripts ;;
      pnpm) corepack pnpm rebuild ;;
      yarn-berry) corepack yarn rebuild ;;
      yarn-classic) corepack yarn install --frozen-lockfile --non-interactive --offline ;;
      bun) bun install --frozen-lockfile --offline --force ;;
    esac
  else
    # The listed packages' scripts (a name not in the tree is no error), then the root's if listed.
    echo "install: running the install scripts of the allowlisted packages, offline: ${INSTALL_SCRIPT_PACKAGES:-none}"
    set --
    for package in $INSTALL_SCRIPT_PACKAGES; do
      set -- "$@" "$package"
    done
    if [ "$#" -gt 0 ]; then
      case "$manager" in
        pnpm) corepack pnpm rebuild "$@" ;;
        yarn-berry) corepack yarn rebuild "$@" ;;
        *) npm rebuild "$@" ;;
      esac
    fi
    case "$manager" in
      yarn-berry) run_root_scripts corepack yarn run ;;
      *) run_root_scripts npm run --ignore-scripts ;;
    esac
  fi
  printf '%s' "$scripts_mode" > "$RESULTS_DIR/install-scripts"
  echo "install: install scripts done ($scripts_mode)"
  exit 0
fi

[ "$phase" = fetch ] || fail "INSTALL_PHASE must be fetch or scripts, not $phase"

case "$manager" in
  yarn-berry)
    refuse_yarn_plugins
    case "$declared" in
      yarn@1.*|"") if [ "$yarn_code" != allow ] || ! grep -q '^yarnPath:' .yarnrc.yml; then
                     fail "a Yarn 2+ project (.yarnrc.yml) must name its Yarn in package.json's packageManager (e.g. \"yarn@4.5.0\"): the pipeline does not run the repository's yarnPath (unless the setting allow_yarn_repository_code allows it)"
                   fi ;;
    esac
    echo "install: yarn.lock with Yarn 2+: yarn install --immutable --mode=skip-build (scripts run later, offline)"
    set -- corepack yarn install --immutable --mode=skip-build ;;
  yarn-classic)
    echo "install: yarn.lock with Yarn classic: yarn install --frozen-lockfile --ignore-scripts (scripts run later, offline)"
    set -- corepack yarn install --frozen-lockfile --non-interactive --ignore-scripts ;;
  pnpm)
    echo "install: pnpm-lock.yaml found: pnpm install --frozen-lockfile --ignore-scripts --ignore-pnpmfile (scripts run later, offline)"
    set -- corepack pnpm install --frozen-lockfile --ignore-scripts --ignore-pnpmfile
    if [ -n "${DEPENDENCY_CACHE:-}" ]; then
      # Copies, not hard links: a later write into node_modules must not reach the shared store.
      set -- "$@" --store-dir "$DEPENDENCY_CACHE/pnpm-store" --package-import-method copy --prefer-offline
    fi ;;
  bun)
    echo "install: Bun lockfile found: bun install --frozen-lockfile --ignore-scripts (scripts run later, offline)"
    set -- bun install --frozen-lockfile --ignore-scripts ;;
  npm)
    if [ -f package-lock.json ]; then
      echo "install: package-lock.json found: npm ci --ignore-scripts (scripts run later, offline)"
      set -- npm ci --ignore-scripts
    else
      echo "install: package.json without a lockfile: npm install --ignore-scripts (not reproducible; commit a lockfile)"
      set -- npm install --ignore-scripts
    fi
    # The project's .npmrc may name programs npm runs while fetching (git for git dependencies);
    # the environment outranks it.
    export npm_config_git=git ;;
esac

if [ -n "${DEPENDENCY_CACHE:-}" ] && [ -d "$DEPENDENCY_CACHE" ]; then
  # The quota: a partition over it is emptied whole (a cache may always be dropped; the next
  # fetches fill it again with what builds use now).
  used_mb=$(du -sm "$DEPENDENCY_CACHE" | cut -f1)
  if [ "$used_mb" -gt "${DEPENDENCY_CACHE_MAX_MB:-10240}" ]; then
    echo "install: the dependency cache holds $used_mb MiB, over its quota of ${DEPENDENCY_CACHE_MAX_MB:-10240} MiB (setting dependency_cache_max_mb): emptied"
    rm -rf "$DEPENDENCY_CACHE/npm" "$DEPENDENCY_CACHE/pnpm-store"
  fi
fi
if [ -n "${DEPENDENCY_CACHE:-}" ]; then
  case "$manager" in
    # Not prefer-offline: with it npm fails on a cache entry a build corrupted instead of fetching it
    # again, so one hostile build could break every later one (tests/integration/test_dependency_cache.py).
    npm) export npm_config_cache="$DEPENDENCY_CACHE/npm"
         echo "install: npm cache in $DEPENDENCY_CACHE (shared; written only here, with scripts off; npm checks every entry's hash)" ;;
    pnpm) echo "install: pnpm store in $DEPENDENCY_CACHE (shared; written only here, with scripts and pnpmfile off; copied, not linked)" ;;
    *) echo "install: $manager keeps its cache in this run (Yarn 1 and Bun do not re-check cached packages; Yarn PnP bundles would name the cache's path)" ;;
  esac
fi

"$@"
printf '%s' "$manager" > "$RESULTS_DIR/package-manager"
echo "install: dependencies fetched with $manager"

# The toolchain, for the build's provenance: the manager's version, the lockfile and its digest.
case "$1" in
  corepack) manager_version=$(corepack_version "$2") ;;
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
