# Runs after prelude.sh (set -eu, fail, results).
# Stage 1: clone GIT_URL at GIT_REVISION into CHECKOUT_DIR; write the resolved commit SHA to
# RESULTS_DIR/commit. Inputs come only from the environment, and reach git as argv, never as code.
#   GIT_URL, GIT_REVISION         required
#   GIT_BRANCH                    optional: the branch to fetch; GIT_REVISION is a commit on it
#   SPARSE_CHECKOUT_DIRECTORIES   optional: newline-separated directories (cone mode keeps root files)
#   CHECKOUT_DIR, RESULTS_DIR     required
#   GIT_USERNAME, GIT_PASSWORD    optional: HTTPS credentials of a private repository (a token)
#   GIT_SUBMODULES                optional: "true" to fetch submodules (never by default)
#   INPUT_DIRECTORIES             optional: newline-separated directories whose git trees decide the
#                                 bundle, "dir:excluded:..." for one without some subdirectories
#                                 (RESULTS_DIR/input-trees: "<line>=<tree hash>" per line)

# $fetch_opts is split on purpose: it holds zero or one option.
# shellcheck disable=SC2086
: "${GIT_URL:?GIT_URL is required}" "${GIT_REVISION:?GIT_REVISION is required}"
: "${CHECKOUT_DIR:?CHECKOUT_DIR is required}"
GIT_BRANCH="${GIT_BRANCH:-}"
SPARSE_CHECKOUT_DIRECTORIES="${SPARSE_CHECKOUT_DIRECTORIES:-}"

# No prompts, no helpers such as ext::, no submodules: only the transports the caller allows.
export GIT_TERMINAL_PROMPT=0
export GIT_ALLOW_PROTOCOL="${GIT_ALLOW_PROTOCOL:-https:ssh:git}"

# Empty it rather than remove it: in the sandbox the directory itself is a mount point.
mkdir -p "$CHECKOUT_DIR"
find "$CHECKOUT_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
cd "$CHECKOUT_DIR" || exit 1
git init --quiet
git config advice.detachedHead false
# A public host must not send git on to an internal one.
git config http.followRedirects false
git remote add origin "$GIT_URL"
if [ -n "${GIT_PASSWORD:-}" ]; then
  # A private repository: the token stays in this process's environment, never in a URL or a
  # file; git's config holds only this helper, which reads it when git asks.
  git config credential.helper \
    '!f() { test "$1" = get || return 0; echo "username=${GIT_USERNAME:-x-access-token}"; echo "password=${GIT_PASSWORD}"; }; f'
fi

if [ -n "${GIT_SSH_KEY:-}" ]; then
  # An SSH deploy key: a file in this stage's own /tmp (the sandbox's tmpfs, the pod's emptyDir),
  # readable by this user only, removed when the stage ends; host keys always checked.
  [ -n "${GIT_SSH_KNOWN_HOSTS:-}" ] || fail "git-url is an SSH URL, and no host key is known for it (setting git_known_hosts, or the git connection's extra known_hosts): host keys are always checked"
  ssh_dir=$(mktemp -d /tmp/cfw-ssh.XXXXXX)  # never TMPDIR: that is in the workspace later stages see
  trap 'rm -rf "$ssh_dir"' EXIT
  (umask 077 && printf '%s\n' "$GIT_SSH_KEY" > "$ssh_dir/key" && printf '%s\n' "$GIT_SSH_KNOWN_HOSTS" > "$ssh_dir/known_hosts")
  unset GIT_SSH_KEY
  GIT_SSH_COMMAND="${GIT_SSH_COMMAND:-ssh} -F /dev/null -i $ssh_dir/key -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$ssh_dir/known_hosts -o GlobalKnownHostsFile=/dev/null"
  export GIT_SSH_COMMAND
fi

fetch_opts=""
if [ -n "$SPARSE_CHECKOUT_DIRECTORIES" ]; then
  echo "checkout: sparse checkout of: $(printf '%s' "$SPARSE_CHECKOUT_DIRECTORIES" | tr '\n' ' ')"
  git config extensions.partialClone origin
  fetch_opts="--filter=blob:none"
  # One directory per line, passed as separate arguments without word-splitting surprises.
  git sparse-checkout init --cone
  printf '%s\n' "$SPARSE_CHECKOUT_DIRECTORIES" | git sparse-checkout set --cone --stdin
fi

resolve() {
  git rev-parse --quiet --verify "$1^{commit}" 2>/dev/null
}

if [ -n "$GIT_BRANCH" ]; then
  echo "checkout: fetching branch $GIT_BRANCH"
  git fetch --quiet --no-tags $fetch_opts origin "+refs/heads/$GIT_BRANCH:refs/remotes/origin/$GIT_BRANCH"
  if [ "$GIT_REVISION" = "$GIT_BRANCH" ] || [ "$GIT_REVISION" = "HEAD" ]; then
    commit=$(resolve "refs/remotes/origin/$GIT_BRANCH")
  else
    if ! commit=$(resolve "$GIT_REVISION") \
      || ! git merge-base --is-ancestor "$commit" "refs/remotes/origin/$GIT_BRANCH"; then
      fail "git-revision $GIT_REVISION is not a commit on git-branch $GIT_BRANCH"
    fi
  fi
# A branch, tag or full SHA can be fetched alone, one commit deep.
elif git fetch --quiet --no-tags --depth=1 $fetch_opts origin "$GIT_REVISION" 2>/dev/null; then
  echo "checkout: shallow fetch of $GIT_REVISION"
  commit=$(resolve FETCH_HEAD)
else
  # A short SHA (or a server refusing SHAs in wants) needs the refs' history to resolve against.
  echo "checkout: $GIT_REVISION is not a ref the server serves alone; fetching branches and tags"
  git fetch --quiet $fetch_opts origin "+refs/heads/*:refs/remotes/origin/*" "+refs/tags/*:refs/tags/*"
  commit=$(resolve "$GIT_REVISION") || {
    fail "git-revision $GIT_REVISION not found in $GIT_URL"; }
fi

git checkout --quiet --detach "$commit"
if [ "${GIT_SUBMODULES:-false}" = true ]; then
  echo "checkout: initialising submodules (git_submodules setting)"
  git submodule update --init --recursive --depth 1
fi
printf '%s' "$commit" > "$RESULTS_DIR/commit"
echo "checkout: $GIT_REVISION is commit $commit"

# The git trees of the directories that decide the bundle: a later commit that touches none of
# them builds the same bundle. Trees come with every fetch, sparse or not. A line "dir:a:b" is
# dir without its subdirectories a and b (the other workers' project roots): the SHA-256 of its
# listing without them.
set -f
old_ifs=$IFS
IFS='
'
trees=""
for spec in ${INPUT_DIRECTORIES:-.}; do
  dir=${spec%%:*}
  if [ "$dir" = "." ]; then path="$commit^{tree}"; else path="$commit:$dir"; fi
  tree=$(git rev-parse --quiet --verify "$path" 2>/dev/null) || tree="absent"
  if [ "$spec" != "$dir" ] && [ "$tree" != absent ]; then
    if [ "$dir" = "." ]; then listing=$(git ls-tree -r --full-tree "$commit"); else
      listing=$(git ls-tree -r --full-tree "$commit" -- "$dir"); fi
    tree=$(printf '%s\n' "$listing" | awk -v excluded="${spec#*:}" '
      BEGIN { n = split(excluded, skip, ":") }
      { path = $0; sub(/^[^\t]*\t/, "", path); for (i = 1; i <= n; i++) if (index(path, skip[i] "/") == 1) next; print }
    ' | sha256sum | cut -d' ' -f1)
  fi
  trees="$trees$spec=$tree
"
done
IFS=$old_ifs
set +f
printf '%s' "$trees" > "$RESULTS_DIR/input-trees"
