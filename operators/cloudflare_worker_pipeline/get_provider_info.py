"""What Airflow learns about this provider through the ``apache_airflow_provider`` entry point.

The ``[cloudflare_worker_pipeline]`` configuration section is declared here, every setting with its
type, default, example and description: ``airflow config list --section cloudflare_worker_pipeline``
shows them, and :mod:`cloudflare_worker_pipeline.settings` reads its defaults from here and from
nowhere else.
"""

from __future__ import annotations

from typing import Any

SECTION = "cloudflare_worker_pipeline"
# The triggered DAG (the scheduled rebuilds are rebuild_<service>).
MAIN_DAG_ID = "build_and_upload_cloudflare_worker"
VERSION = "0.1.0"

_POD_RESOURCES = ('{"requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"}, '
                  '"limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "4Gi"}}')

# key -> (type, default, example, description)
_OPTIONS: dict[str, tuple[str, str, str | None, str]] = {
    "namespace": ("string", "planton-cloud-pipelines", "builds",
                  "Namespace of both ConfigMaps (and, in the kubernetes mode, of the stage pods and claims)."),
    "r2_conn_id": ("string", "r2_default", None,
                   "Airflow connection (type aws) holding R2's S3 access key id (login) and secret (password)."),
    "kubernetes_conn_id": ("string", "kubernetes_default", None,
                           "Airflow connection (type kubernetes) for the ConfigMaps (configmap_destination = cluster) "
                           "and, in the kubernetes mode, the pods and claims."),
    "configmap_destination": ("string", "cluster", "files",
                              "Where the ConfigMaps go: cluster (the API, through kubernetes_conn_id; a run fails "
                              "before building when the connection is missing) or files (manifests in manifest_dir)."),
    "manifest_dir": ("string", "", "/var/lib/airflow/configmaps",
                     "With configmap_destination = files, where the ConfigMap manifests go; empty: "
                     "<system temp dir>/cloudflare-worker-pipeline/configmaps."),
    "workspace_root": ("string", "", "/srv/builds",
                       "Parent of the per-run workspaces; empty: <system temp dir>/cloudflare-worker-pipeline/"
                       "workspaces. In the kubernetes mode, where workers mount the workspace claim."),
    "allow_file_git_urls": ("boolean", "False", "True",
                            "Accept file:// and path git-url values (demos, tests): never on a shared deployment."),
    "allow_http_git_urls": ("boolean", "False", "True",
                            "Accept plain http:// git-url values, for internal git servers without TLS; the host "
                            "must still pass allowed_git_hosts."),
    "install_env": ("string", "{}", '{"COREPACK_NPM_REGISTRY": "https://registry.example.com"}',
                    "JSON object of extra environment for install and bundle: registry mirrors, corepack "
                    "settings. Plain configuration, never secrets."),
    "execution_mode": ("string", "local", "kubernetes",
                       "Where stage scripts run: local (a bubblewrap sandbox on the worker) or kubernetes (pods)."),
    "stage_timeout_seconds": ("integer", "900", "600",
                              "A stage script running longer is stopped with every process it started."),
    "max_bundle_bytes": ("integer", "67108864", "10485760", "The ceiling: a larger bundle or module fails before upload, "
                         "and no run's bundle-size-limit-bytes may exceed it."),
    "dag_owner": ("string", "airflow", "platform-team", "The owner shown on the pipeline's DAGs and tasks."),
    "pool": ("string", "", "cloudflare-worker-builds",
             "Airflow pool every task of the pipeline runs in (it must exist); empty: default_pool."),
    "max_active_runs": ("integer", "4", "8", "Runs of one pipeline DAG at once; more wait queued."),
    "stage_retries": ("string", "{}", '{"install": 3, "upload": 5}',
                      "JSON object: task id -> retries, over the built-in checkout 2, install 1, upload 3, "
                      "kustomize_build 1, publish 3 (the others 0)."),
    "failure_callback": ("string", "", "my_company.airflow.notify_build_failure",
                         "Import path of a callable or notifier instance run when a task of the pipeline fails "
                         "(its on_failure_callback), e.g. a configured SlackNotifier."),
    "dependency_cache_max_mb": ("integer", "10240", "20480",
                               "The dependency cache's quota per partition, in MiB: a fuller partition is emptied "
                               "before the next fetch fills it again."),
    "dependency_cache_dir": ("string", "", "/var/cache/cloudflare-worker-pipeline",
                             "Local mode: npm's cache and pnpm's store shared between builds (both verified "
                             "against the lockfile's hashes); empty: <system temp dir>/cloudflare-worker-pipeline/"
                             "dependency-cache; none: no shared cache."),
    "dependency_cache_claim": ("string", "", "worker-dependency-cache",
                               "Kubernetes mode: a ReadWriteMany claim mounted into install pods as the same "
                               "shared cache; empty: none."),
    "services_file": ("string", "", "/etc/airflow/cloudflare-worker-services.yaml",
                      "YAML file of services rebuilt on a schedule, one DAG each; empty: none."),
    "git_submodules": ("boolean", "False", "True", "Fetch the repository's submodules."),
    "git_conn_id": ("string", "git_default", None,
                    "Connection with a private repository's HTTPS user (login) and token (password); used when it "
                    "exists (local mode)."),
    "git_known_hosts": ("string", "", "/etc/ssh/ssh_known_hosts",
                        "A known_hosts file on the worker with the SSH git servers' host keys (ssh:// and scp-like "
                        "git-url values); the git connection's extra known_hosts adds to it. Host keys are always "
                        "checked: an SSH URL without a known host key is refused."),
    "git_credentials_secret": ("string", "", "git-credentials",
                               "Kubernetes mode: a Secret with keys username and password (HTTPS), or ssh-privatekey "
                               "(an SSH deploy key), the checkout pod reads."),
    "sandbox": ("string", "bubblewrap", "none",
                "Local mode: bubblewrap runs every stage script in a sandbox; none runs them as the worker's user, "
                "for trusted repositories only."),
    "sandbox_read_only_paths": ("string", "", "/opt/node",
                                "Comma-separated host paths the sandbox shows read-only (e.g. a Node outside /usr)."),
    "stage_max_processes": ("integer", "2048", "1024",
                            "Local mode: processes and threads one stage may run at once (its cgroup's pids.max); "
                            "a fork bomb stops there and fails the stage naming this setting."),
    "stage_memory_mb": ("integer", "4096", "2048",
                        "Local mode: memory one stage may use, in MiB (its cgroup's memory limit); a stage over it "
                        "is killed and fails naming this setting."),
    "sandbox_tmp_size_mb": ("integer", "512", "256",
                            "Local mode: the size of the sandbox's /tmp (a tmpfs, held in memory), in MiB. Builds "
                            "write their temporary files to TMPDIR, in the run's workspace, instead."),
    "workspace_max_mb": ("integer", "4096", "2048",
                         "Local mode: the disk one run's workspace may use (clone, node_modules, dist, its HOME); a "
                         "stage taking it past this fails naming the setting. No file may grow past it either."),
    "allowed_r2_endpoints": ("string", "*.r2.cloudflarestorage.com", "*.r2.cloudflarestorage.com,10.0.0.0/8",
                             "Comma-separated host patterns, addresses or networks r2-endpoint-url may name; a "
                             "non-public address must be listed as an address or network."),
    "allowed_git_hosts": ("string", "*", "github.com,gitlab.example.com,10.1.2.3",
                          "The same for git-url hosts: any host with a public address by default."),
    "allowed_registry_hosts": ("string", "registry.npmjs.org,registry.yarnpkg.com,repo.yarnpkg.com",
                               "registry.npmjs.org,npm.example.com,10.2.3.4",
                               "Local mode: the hosts the install stage's package manager may reach through the "
                               "worker's egress proxy, beside the hosts of the registry URLs in install_env; a "
                               "non-public address must be listed as an address or network."),
    "egress_upstream_proxy": ("string", "", "http://proxy.internal:3128",
                              "The network's own HTTP proxy, for workers with no direct route out: the egress "
                              "proxies (the stages' and the Deployment) check each connection as always, then ask "
                              "it to CONNECT by host name. http://[user:password@]host:port; empty: connect "
                              "directly."),
    "tenants": ("string", "", "/etc/airflow/cloudflare-worker-tenants.yaml",
                "The tenant map: which owner (owner label key=value) each repository builds for, and the object-key "
                "prefixes, ConfigMap names, buckets and callers it is granted; runs outside them are refused at "
                "validation. Inline JSON or a YAML/JSON file's path, read at each run. Empty: one tenant, any run "
                "may name any owner."),
    "adopt_unowned_objects": ("boolean", "False", "True",
                              "Whether a run may replace an object at its key that carries no owner metadata (one "
                              "another tool stored, or this pipeline before it recorded owners); the run's owner "
                              "then owns it. False refuses such runs."),
    "provenance_signing_conn_id": ("string", "provenance_signing_default", None,
                                   "Airflow connection whose password holds the ed25519 private key (PEM) that signs "
                                   "each build's provenance (<r2-object-key>.intoto.jsonl). `python -m "
                                   "cloudflare_worker_pipeline.signing` makes a key pair."),
    "allow_unsigned_provenance": ("boolean", "False", "True",
                                  "Without the signing connection, store the provenance statement unsigned instead "
                                  "of refusing to run. A connection, when present, always signs."),
    "allow_build_command": ("boolean", "True", "False",
                            "Whether a run may pass build-command: a program the catalogue's user chooses, run in "
                            "the bundle stage's sandbox (no network, no secrets) before Wrangler. False refuses "
                            "such runs at validation."),
    "install_scripts": ("string", "run", "allowlist",
                        "Install scripts (dependencies' and the root package's lifecycle scripts) run after the "
                        "fetch, with no network: run (all), allowlist (only install_script_packages; the root "
                        "package's own when its name is listed) or none."),
    "allow_yarn_repository_code": ("boolean", "False", "True",
                                   "Yarn 2+: load the plugins and the yarnPath release a repository's .yarnrc.yml "
                                   "names. They are repository code, and run in the fetch, which reaches the "
                                   "registries (only) through the egress proxy. Off: plugins are refused and yarnPath "
                                   "is ignored."),
    "install_script_packages": ("string", "", "esbuild,workerd,my-worker",
                                "With install_scripts = allowlist: comma-separated package names whose install "
                                "scripts run."),
    "node_image": ("string", "node:20-alpine", "node:20-alpine@sha256:<digest>",
                   "Kubernetes mode: the image of install and bundle; pin it by digest."),
    "node_image_template": ("string", "node:{version}-alpine", "registry.example.com/node:{version}-alpine",
                            "Kubernetes mode: the Node image for a project naming its Node version (node-version, "
                            ".nvmrc or .node-version); {version} is that version."),
    "bun_image": ("string", "", "registry.example.com/node-bun:20-1.4.5",
                  "Kubernetes mode: the install image for a project with a Bun lockfile (needs sh, node and bun); "
                  "empty uses the Node image, whose install then fails saying Bun is missing."),
    "git_image": ("string", "alpine/git:v2.47.2", None, "Kubernetes mode: the checkout image (git, sh)."),
    "pod_registry_proxy": ("string", "", "http://cloudflare-worker-egress-proxy:3128",
                           "Kubernetes mode: the egress proxy install's fetch pods go through (its registry "
                           "listener, examples/kubernetes/egress-proxy.yaml); empty: straight out, as the "
                           "NetworkPolicies allow."),
    "pod_git_proxy": ("string", "", "http://cloudflare-worker-egress-proxy:3129",
                      "Kubernetes mode: the egress proxy checkout pods go through (its git listener); https git "
                      "URLs only. Empty: straight out, as the NetworkPolicies allow."),
    "kubectl_image": ("string", "alpine/k8s:1.32.4", None, "Kubernetes mode: the kustomize_build image (kubectl, sh)."),
    "pod_service_account": ("string", "", "cloudflare-worker-builds",
                            "Kubernetes mode: the stage pods' service account (no token is mounted either way)."),
    "pod_resources": ("string", _POD_RESOURCES, None, "Kubernetes mode: JSON requests and limits of stage pods."),
    "image_pull_secrets": ("string", "", "registry-a,registry-b", "Kubernetes mode: comma-separated secret names."),
    "pod_node_selector": ("string", "{}", '{"pool": "builds"}', "Kubernetes mode: JSON node selector."),
    "pod_tolerations": ("string", "[]", '[{"key": "builds", "operator": "Exists"}]', "Kubernetes mode: JSON tolerations."),
    "pod_run_as_user": ("integer", "1000", None, "Kubernetes mode: UID, GID and fsGroup of stage pods (non-root)."),
    "pod_startup_timeout_seconds": ("integer", "300", None, "Kubernetes mode: how long a pod may stay Pending."),
    "keep_failed_pods": ("boolean", "False", "True", "Kubernetes mode: keep failed pods for debugging."),
    "deferrable": ("boolean", "False", "True", "Kubernetes mode: stage tasks defer to the triggerer while pods run."),
    "workspace_claim": ("string", "", "cloudflare-worker-builds",
                        "Kubernetes mode: an existing ReadWriteMany claim for all runs; empty: a claim per run."),
    "workspace_storage_class": ("string", "", "standard", "Kubernetes mode: storage class of per-run claims."),
    "workspace_size": ("string", "1Gi", "5Gi", "Kubernetes mode: size of per-run claims."),
    "workspace_access_mode": ("string", "ReadWriteOnce", "ReadWriteMany",
                              "Kubernetes mode: access mode of per-run claims."),
}

DEFAULTS: dict[str, str] = {key: default for key, (_, default, _, _) in _OPTIONS.items()}
# Masked in logs and `airflow config list`, and readable from a secret (`..._SECRET`) or command (`..._CMD`).
SENSITIVE = frozenset({"egress_upstream_proxy"})


def _escaped(default: str) -> str:
    """Airflow expands ``{...}`` in configuration defaults (``str.format``): keep JSON braces literal."""
    return default.replace("{", "{{").replace("}", "}}")


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-cloudflare-worker-pipeline",
        "name": "Cloudflare Worker pipeline",
        "description": "Builds Cloudflare Worker bundles with Wrangler, uploads them to R2 and records them in "
                       "Kubernetes ConfigMaps.",
        "versions": [VERSION],
        "extra-links": [
            "cloudflare_worker_pipeline.links.CommitLink",
            "cloudflare_worker_pipeline.links.R2ObjectLink",
        ],
        "plugins": [{"name": "cloudflare_worker_pipeline",
                     "plugin-class": "cloudflare_worker_pipeline.plugin.CloudflareWorkerPipelinePlugin"}],
        "config": {
            SECTION: {
                "description": "Deployment settings of the Cloudflare Worker pipeline, read when a task runs.",
                "options": {
                    key: {"description": description, "version_added": VERSION, "type": kind, "example": example,
                          "default": _escaped(default), **({"sensitive": True} if key in SENSITIVE else {})}
                    for key, (kind, default, example, description) in _OPTIONS.items()
                },
            }
        },
    }
