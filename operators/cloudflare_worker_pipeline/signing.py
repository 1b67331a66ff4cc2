"""The platform's signature on what it built: the provenance statement in a DSSE envelope.

SLSA Build L3 asks that the provenance be signed by the platform, with a key no tenant reaches.
``upload`` signs the statement with ed25519 (``securesystemslib``) and stores the envelope as
``<r2-object-key>.intoto.jsonl``, the in-toto attestation format that cosign, slsa-verifier and
in-toto tools read. The private key comes from an Airflow connection (``provenance_signing_conn_id``:
its password holds the PEM) and is only ever loaded in the Airflow task process: never in a sandbox,
a pod, a log or XCom. ``python -m cloudflare_worker_pipeline.signing`` makes a key pair.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

# securesystemslib and cryptography are imported where used: the operators import this module, and
# parsing the DAG file must stay cheap (securesystemslib's signers pull in boto3 and more).
if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner

PAYLOAD_TYPE = "application/vnd.in-toto+json"
SIGNATURE_METADATA = "provenance-signature-sha256"  # the bundle's metadata: SHA-256 of its envelope


class ProvenanceSigningError(ValueError):
    """The signing connection is missing or holds no usable key."""


class SigningConnectionMissingError(ProvenanceSigningError):
    """No signing connection: the deployment may allow unsigned output (``allow_unsigned_provenance``)."""


class ProvenanceVerificationError(ValueError):
    """A stored release does not verify: a bad signature, a changed file, another commit or owner."""


def signature_key(bundle_key: str) -> str:
    return f"{bundle_key}.intoto.jsonl"


def load_signer(conn_id: str) -> CryptoSigner:
    """The ed25519 signer in connection ``conn_id`` (its password: a PKCS#8 PEM private key)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    why = f"setting provenance_signing_conn_id: connection {conn_id!r}"
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise SigningConnectionMissingError(
            f"{why} does not exist: add it (its password an ed25519 private key in PEM; `python -m "
            "cloudflare_worker_pipeline.signing` makes one), or set allow_unsigned_provenance = True") from None
    return signer_from_pem(connection.password or "", why)


def run_signer(conn_id: str, allow_unsigned: bool) -> CryptoSigner | None:
    """The deployment's signer; None only where unsigned output is allowed and no connection exists
    (a connection holding a bad key is an error either way)."""
    try:
        return load_signer(conn_id)
    except SigningConnectionMissingError:
        if allow_unsigned:
            return None
        raise


def signer_from_pem(pem: str, why: str = "the signing key") -> CryptoSigner:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ProvenanceSigningError(f"{why} holds no PEM private key (unencrypted PKCS#8) in its password") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProvenanceSigningError(f"{why} holds a {type(key).__name__}, not an ed25519 private key")
    return CryptoSigner(key)


def public_key_pem(signer: CryptoSigner) -> str:
    """The signer's public key, PEM (SubjectPublicKeyInfo): what readers verify with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key: Any = signer.public_key
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.keyval["public"]))
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(statement: bytes, signer: CryptoSigner) -> bytes:
    """The DSSE envelope of ``statement``, one JSON line."""
    from securesystemslib.dsse import Envelope

    envelope = Envelope(payload=statement, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    return (json.dumps(envelope.to_dict(), sort_keys=True) + "\n").encode()


def verified_statement(envelope_bytes: bytes, public_pem: str) -> bytes:
    """The statement inside the envelope, once its signature verifies with ``public_pem``."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey

    try:
        envelope = Envelope.from_dict(json.loads(envelope_bytes))
    except (ValueError, KeyError, TypeError) as error:
        raise ProvenanceVerificationError(f"the envelope is not a DSSE envelope ({error})") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ProvenanceVerificationError(f"the envelope holds {envelope.payload_type!r}, not {PAYLOAD_TYPE}")
    try:
        public = serialization.load_pem_public_key(public_pem.encode())
    except ValueError:
        raise ProvenanceVerificationError("the public key is not a PEM public key") from None
    try:
        envelope.verify([SSlibKey.from_crypto(public)], 1)
    except VerificationError as error:
        raise ProvenanceVerificationError(f"the signature does not verify with this key ({error})") from None
    return envelope.payload


def main() -> int:
    """Print a new key pair: the connection to add, and the public key readers verify with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    print("# The signing connection (AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT, or your secrets backend):")
    print(json.dumps({"conn_type": "generic", "password": pem}))
    print("# The public key, for `python -m cloudflare_worker_pipeline.verify --public-key`:")
    print(public, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
