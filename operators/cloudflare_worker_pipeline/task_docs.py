"""What the Airflow UI shows beside the pipeline: the DAG's runbook and each task's doc.

Markdown, rendered by the UI's "Docs" panels; written for the person looking at a red run.
"""

from __future__ import annotations

RUNBOOK = """\
# Build and upload a Cloudflare Worker

Builds a Worker from git with its own Wrangler, stores the bundle in R2 and records it in two
ConfigMaps that deploys read. A port of the Tekton pipeline `build-and-upload-cloudflare-worker`.

| Step | Task | Writes |
|---|---|---|
| 1 | `setup`: validate parameters, then prepare workspace | the run's workspace (after validation) |
| 2 | `checkout` | the clone |
| 3 | `install` → `bundle`, `typecheck` | `node_modules`, `dist/` |
| 4 | `kustomize_build` (beside 3-5) | rendered overlays |
| 5 | `upload` | the R2 object |
| 6 | `publish` | both ConfigMaps, the Asset event |
| 7 | `remove_workspace` (teardown) | removes the workspace |

**A release is published whole.** `publish` runs only when `upload` and `kustomize_build` both
succeeded, so a red run never leaves new manifests beside an old bundle or the reverse.

**`bundle`, `typecheck` and `upload` are mapped** over the run's workers (the group `workers`):
one instance for a single worker, one per worker with `additional-workers` (map index 0 is the
top-level worker). Any worker failing stops `publish` for all of them.

**Skipped `install`, `bundle`, `typecheck` and `upload`** mean the object at the key already held this build
(the same fingerprint of commit trees, parameters and toolchain; `checkout`'s log says which; with
several workers, a stored worker's own instances are skipped while the others build);
`publish` checked the object and applied the ConfigMaps as a full run would. Trigger with
`force-rebuild=true` to build anyway.

## When a run is red

- **`setup` failed in its "Validate parameters" section**: the message names the parameter or
  setting; fix the conf and trigger again. Nothing was cloned or written.
- **`setup` failed in its "Prepare workspace" section**: the deployment cannot host the build
  (bubblewrap cannot run, or the workspace claim is missing or not mounted); the message says which
  and how to fix it.
- **A stage failed with `ERROR: ...`**: the project's problem (no Wrangler config, a broken
  overlay, a bundle over the size limit); not retried. Fix the repository.
- **A stage failed otherwise** (network, registry, timeout): it was retried; check the task log's
  last lines, then clear the task to try again.
- **`publish` failed after `upload` replaced a fixed key**: the object is new, the ConfigMap
  still describes the previous one; the message names both hashes. Clear `publish` once the
  Kubernetes API is back.

Each run's objects carry the commit: the R2 object's `commit` metadata, and the ConfigMaps'
`cloudflare-worker-pipeline.planton.cloud/commit` and `/dag-run` annotations.
"""

TASK_DOCS = {
    "setup": "Two steps, each a section of the log. **Validate parameters**: every parameter, the allowed hosts, the "
             "owners of the object and the ConfigMaps, and that the ConfigMaps can be written; fails once, naming the "
             "parameter or setting. **Prepare workspace**: creates the run's workspace (a directory, or a Kubernetes "
             "claim) and checks this deployment can use it. Returns the run's workers, which `bundle`, `typecheck` and "
             "`upload` are mapped over; the validated parameters are its XCom `parameters`. The run's setup task; "
             "`remove_workspace` is its teardown.",
    "checkout": "Clones `git-url` at `git-revision` (shallow; sparse when asked). Returns `commit_sha` and the "
                "build's fingerprint. A symlink leading out of the clone fails here, naming it. When the object at the "
                "key already holds this build, it skips `install`, `bundle`, `typecheck` and `upload`.",
    "install": "Installs dependencies with the package manager the lockfile names, frozen. Returns "
               "`package_manager`. Retried once: registries have bad minutes.",
    "bundle": "Runs the project's own `wrangler deploy --dry-run --outdir dist`. Returns `bundle_path`, `sha256`, "
              "`size_bytes`, the gzip and brotli sizes, the `files` beside the bundle (modules, source map) and the "
              "config's Durable Objects; over `bundle-size-limit-bytes` (or a file over `max_bundle_bytes`) fails here.",
    "typecheck": "Runs the project's own `tsc --noEmit` beside the bundle when the project root has a `tsconfig.json` "
                 "(`typescript-check`: auto, on, off). Type errors fail it with the compiler's messages; the upload "
                 "waits for it. Returns `typescript`: checked, off, no-tsconfig or no-typescript.",
    "upload": "Puts the modules and source map beside the bundle, then the bundle, each with its SHA-256 (the server "
              "verifies it), then HEADs each to compare. "
              "Returns the object's URL, key and hashes. Transient S3 errors are retried; refused ones are not.",
    "kustomize_build": "Renders each `overlays/<name>` with `kubectl kustomize`, without network. Returns `overlays`.",
    "publish": "Writes the manifests ConfigMap, then each worker's artifact metadata ConfigMap, while the objects are still "
               "this run's (or, when the upload was skipped, still the stored build), and emits the bundle Asset "
               "event. Returns where each went and the `artifact`. Retried: the Kubernetes API may be briefly away.",
    "remove_workspace": "Deletes the run's workspace (or its claim), whatever happened. A teardown: it does not "
                        "decide the run's state.",
}
