"""The platform's signature: a DSSE envelope signed and verified with ed25519 (securesystemslib)."""

from __future__ import annotations

import base64
import json

import pytest
from cloudflare_worker_pipeline.signing import (
    ProvenanceSigningError,
    ProvenanceVerificationError,
    SigningConnectionMissingError,
    public_key_pem,
    run_signer,
    sign,
    signer_from_pem,
    verified_statement,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

STATEMENT = b'{"_type": "https://in-toto.io/Statement/v1", "subject": []}'


def _pem(key: object) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                             serialization.NoEncryption()).decode()


def test_an_envelope_verifies_with_the_signers_public_key_and_holds_the_statement() -> None:
    signer = signer_from_pem(_pem(Ed25519PrivateKey.generate()))
    envelope = sign(STATEMENT, signer)
    assert envelope.endswith(b"\n") and envelope.count(b"\n") == 1, "one JSON line (.intoto.jsonl)"
    document = json.loads(envelope)
    assert document["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(document["payload"]) == STATEMENT
    assert verified_statement(envelope, public_key_pem(signer)) == STATEMENT


def test_another_key_or_a_changed_payload_does_not_verify() -> None:
    signer = signer_from_pem(_pem(Ed25519PrivateKey.generate()))
    other = public_key_pem(signer_from_pem(_pem(Ed25519PrivateKey.generate())))
    envelope = sign(STATEMENT, signer)
    with pytest.raises(ProvenanceVerificationError, match="does not verify"):
        verified_statement(envelope, other)
    document = json.loads(envelope)
    document["payload"] = base64.b64encode(STATEMENT.replace(b"[]", b'[{"name": "x"}]')).decode()
    with pytest.raises(ProvenanceVerificationError, match="does not verify"):
        verified_statement(json.dumps(document).encode(), public_key_pem(signer))
    with pytest.raises(ProvenanceVerificationError, match="not a DSSE envelope"):
        verified_statement(b"{}", public_key_pem(signer))


@pytest.mark.parametrize("pem,says", [("", "holds no PEM private key"), ("not a key", "holds no PEM private key"),
                                      (_pem(ec.generate_private_key(ec.SECP256R1())), "not an ed25519 private key")])
def test_a_connection_without_an_ed25519_key_is_refused_saying_why(pem: str, says: str) -> None:
    with pytest.raises(ProvenanceSigningError, match=says):
        signer_from_pem(pem)


def test_a_missing_connection_is_an_error_unless_unsigned_output_is_allowed(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_CFW_NO_SUCH_KEY", raising=False)
    with pytest.raises(SigningConnectionMissingError, match="provenance_signing_conn_id: connection 'cfw_no_such_key'"):
        run_signer("cfw_no_such_key", allow_unsigned=False)
    assert run_signer("cfw_no_such_key", allow_unsigned=True) is None
    monkeypatch.setenv("AIRFLOW_CONN_CFW_BAD_KEY", json.dumps({"conn_type": "generic", "password": "nope"}))
    with pytest.raises(ProvenanceSigningError, match="holds no PEM"):  # present but broken: an error either way
        run_signer("cfw_bad_key", allow_unsigned=True)
