"""Verify a stored release: ``python -m cloudflare_worker_pipeline.verify``.

A reader who trusts the platform's public key, not the bucket, checks a release before deploying
it; ``publish`` runs the same check before it writes the ConfigMaps. A release verifies when:

- the envelope ``<key>.intoto.jsonl`` is signed by that key;
- the statement beside it (``<key>.intoto.json``) is the signed one;
- every subject (the bundle, its modules, its source map) still holds the signed SHA-256;
- the statement's commit is the one expected (and the bundle's ``commit`` metadata agrees);
- the statement's owner is the one expected (and the bundle's ``owner`` metadata agrees).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudflare_worker_pipeline.ownership import recorded_owner
from cloudflare_worker_pipeline.provenance import provenance_key
from cloudflare_worker_pipeline.signing import ProvenanceVerificationError, signature_key, verified_statement

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.hooks.r2 import R2Hook

MAX_ENVELOPE_BYTES = 4 * 1024 * 1024


def verify_release(r2: R2Hook, bucket: str, key: str, public_pem: str, *, max_bytes: int,
                   commit: str | None = None, owner: str | None = None) -> dict[str, Any]:
    """What the release at ``s3://bucket/key`` is (key, commit, owner, subjects), once it verifies;
    raise :class:`ProvenanceVerificationError` naming the first thing that does not."""
    where = f"s3://{bucket}/{key}"
    envelope = r2.read(bucket, signature_key(key), max_bytes=MAX_ENVELOPE_BYTES)
    if envelope is None:
        raise ProvenanceVerificationError(f"{where} has no signed provenance ({signature_key(key)})")
    signed = verified_statement(envelope, public_pem)
    beside = r2.read(bucket, provenance_key(key), max_bytes=MAX_ENVELOPE_BYTES)
    if beside is not None and beside != signed:
        raise ProvenanceVerificationError(f"{where}: {provenance_key(key)} is not the statement that was signed")
    statement = json.loads(signed)
    subjects = {subject["name"]: subject["digest"]["sha256"] for subject in statement.get("subject", [])}
    if key not in subjects:
        raise ProvenanceVerificationError(f"{where}: the signed statement is not about this key")
    for name, digest in sorted(subjects.items()):
        body = r2.read(bucket, name, max_bytes=max_bytes)
        if body is None:
            raise ProvenanceVerificationError(f"s3://{bucket}/{name} is missing (signed sha256 {digest})")
        if hashlib.sha256(body).hexdigest() != digest:
            raise ProvenanceVerificationError(f"s3://{bucket}/{name} no longer holds the signed sha256 {digest}")
    definition = statement["predicate"]["buildDefinition"]
    signed_commit = definition["resolvedDependencies"][0]["digest"]["gitCommit"]
    label = definition["externalParameters"].get("owner_label")
    signed_owner = "=".join(label) if label else ""
    stored = r2.stored(bucket, key)
    metadata = stored.metadata if stored else {}
    for what, signed_value, expected, recorded in (
            ("commit", signed_commit, commit, metadata.get("commit")),
            ("owner", signed_owner, owner, recorded_owner(metadata))):
        if expected is not None and signed_value != expected:
            raise ProvenanceVerificationError(f"{where} was signed for {what} {signed_value or '(none)'}, not "
                                              f"{expected or '(none)'}")
        if recorded is not None and recorded != signed_value:
            raise ProvenanceVerificationError(f"{where}'s {what} metadata ({recorded or '(none)'}) is not the signed "
                                              f"{what} ({signed_value or '(none)'})")
    return {"key": key, "commit": signed_commit, "owner": signed_owner, "subjects": subjects,
            "repository": definition["resolvedDependencies"][0].get("uri", "").removeprefix("git+")}


def main(argv: list[str] | None = None) -> int:
    """Exit 0 and print the verified release (JSON) on standard output; 1 when it does not verify,
    2 when the bucket cannot be read. Logs go to standard error, so the output can be piped."""
    parser = argparse.ArgumentParser(prog="python -m cloudflare_worker_pipeline.verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url", required=True, help="the R2 (S3) endpoint, as r2-endpoint-url")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True, help="the bundle's object key")
    parser.add_argument("--public-key", required=True, type=Path, help="the platform's public key (PEM)")
    parser.add_argument("--commit", help="the commit the release must be built from")
    parser.add_argument("--owner", help="the owner it must be built for: <owner label key>=<value>")
    parser.add_argument("--aws-conn-id", help="the Airflow connection to read with (default: setting r2_conn_id; "
                                              "without it, boto3's usual credentials)")
    args = parser.parse_args(argv)
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # Airflow's and the hook's logs are not the result
        code, result = _verify(args)
    print(result, file=out if code == 0 else sys.stderr)
    return code


def _verify(args: argparse.Namespace) -> tuple[int, str]:
    from cloudflare_worker_pipeline.hooks.r2 import R2Error, R2Hook
    from cloudflare_worker_pipeline.settings import PipelineSettings

    settings = PipelineSettings.from_airflow_config()
    r2 = R2Hook(endpoint_url=args.endpoint_url, aws_conn_id=args.aws_conn_id or settings.r2_conn_id)
    try:
        release = verify_release(r2, args.bucket, args.key, args.public_key.read_text(), commit=args.commit,
                                 owner=args.owner, max_bytes=settings.max_bundle_bytes)
    except ProvenanceVerificationError as error:
        return 1, f"verify: FAILED: {error}"
    except (R2Error, OSError) as error:
        return 2, f"verify: could not read the release: {error}"
    return 0, json.dumps({"verified": True, **release}, indent=1, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
