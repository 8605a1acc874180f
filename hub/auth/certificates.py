"""TLS client certificates bound to an operator: with one bound or more, the operator's calls must arrive
over mutual TLS presenting one of them.

The hub stores only the SHA-256 fingerprint of a certificate's DER bytes; the peer's certificate comes from
the call's TLS auth context (`x509_pem_cert`, set by grpc under mTLS), so a certificate that the TLS layer
did not verify against tls_client_ca_file never reaches the comparison. An operator with no binding is
not affected: plaintext, TLS and any client certificate work as before.
"""

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import delete, func, select

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger.schema import client_certificates
from hub.ledger.uow import UnitOfWork

MAX_PER_OPERATOR = 10
MAX_SUBJECT = 256
FINGERPRINT = re.compile(r"[0-9a-f]{64}")
PEER_CERT = "x509_pem_cert"  # the auth context property grpc fills with the client's PEM under mTLS


@dataclass(frozen=True)
class ClientCertificate:
    operator_id: str
    fingerprint: str
    subject: str
    created_at: datetime


def fingerprint_of_pem(pem: bytes) -> str:
    """SHA-256 of the certificate's DER bytes, lower-case hex."""
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).hexdigest()


def parse_fingerprint(text: str) -> str:
    """A fingerprint as given (upper or lower case, colons between bytes allowed) in its stored form."""
    found = text.strip().replace(":", "").lower()
    if not FINGERPRINT.fullmatch(found):
        raise DomainError(Reason.INVALID_ARGUMENT, "sha256_fingerprint must be 64 hex digits (colons allowed), "
                          f"not {quote(text)}")
    return found


def peer_fingerprint(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The fingerprint of the certificate the peer presented over mTLS; None without one."""
    presented = next(iter(auth_context.get(PEER_CERT) or ()), None)
    return None if presented is None else _presented_fingerprint(presented)


@functools.lru_cache(maxsize=1024)
def _presented_fingerprint(pem: bytes) -> str | None:
    """Every call of an mTLS connection presents the same certificate: parsed once, not per call."""
    try:
        return fingerprint_of_pem(pem)
    except ValueError:
        return None


def bound(uow: UnitOfWork, operator_id: str) -> frozenset[str]:
    return frozenset(uow.conn.execute(select(client_certificates.c.fingerprint).where(
        client_certificates.c.operator_id == operator_id)).scalars())


def check(bound_fingerprints: frozenset[str], presented: str | None) -> None:
    """Refuse a call of an operator with bound certificates unless it presented one of them."""
    if bound_fingerprints and presented not in bound_fingerprints:
        raise DomainError(Reason.CLIENT_CERTIFICATE_NOT_BOUND,
                          "this operator's calls must arrive over mutual TLS with one of its bound client certificates"
                          + ("" if presented is None else "; the one presented is not bound"))


def requested(certificate_pem: str, fingerprint: str) -> tuple[str, str]:
    """(fingerprint, subject) of what BindClientCertificate names: a PEM, or a fingerprint (no subject)."""
    if bool(certificate_pem) == bool(fingerprint):
        raise DomainError(Reason.INVALID_ARGUMENT, "give exactly one of certificate_pem and sha256_fingerprint")
    if fingerprint:
        return parse_fingerprint(fingerprint), ""
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        raise DomainError(Reason.INVALID_ARGUMENT, "certificate_pem is not a PEM X.509 certificate") from None
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(), cert.subject.rfc4514_string()[:MAX_SUBJECT]


def _certificate(row: Any) -> ClientCertificate:
    return ClientCertificate(row.operator_id, row.fingerprint, row.subject, row.created_at)


# -- in the caller's unit of work (hub.auth.admin checks the operator exists first) ---------------------------

def bind(uow: UnitOfWork, operator_id: str, fingerprint: str, subject: str) -> ClientCertificate:
    """Bind (idempotent: a fingerprint already bound answers as it stands), within the per-operator maximum."""
    c = client_certificates.c
    row = uow.conn.execute(select(client_certificates).where(
        c.operator_id == operator_id, c.fingerprint == fingerprint)).first()
    if row is not None:
        return _certificate(row)
    count = uow.conn.execute(select(func.count()).select_from(client_certificates).where(
        c.operator_id == operator_id)).scalar_one()
    if count >= MAX_PER_OPERATOR:
        raise DomainError(Reason.CLIENT_CERTIFICATE_LIMIT_REACHED,
                          f"an operator may bind at most {MAX_PER_OPERATOR} client certificates; unbind one first",
                          metadata={"max": str(MAX_PER_OPERATOR)})
    created = ClientCertificate(operator_id, fingerprint, subject, utcnow())
    uow.conn.execute(client_certificates.insert().values(
        operator_id=operator_id, fingerprint=fingerprint, subject=subject, created_at=created.created_at))
    return created


def unbind(uow: UnitOfWork, operator_id: str, fingerprint: str) -> ClientCertificate:
    c = client_certificates.c
    where = (c.operator_id == operator_id, c.fingerprint == fingerprint)
    row = uow.conn.execute(select(client_certificates).where(*where)).first()
    if row is None:
        raise DomainError(Reason.CLIENT_CERTIFICATE_NOT_FOUND,
                          f"no client certificate {fingerprint[:16]}... is bound to this operator")
    uow.conn.execute(delete(client_certificates).where(*where))
    return _certificate(row)


def listed(uow: UnitOfWork, operator_id: str) -> list[ClientCertificate]:
    c = client_certificates.c
    return [_certificate(row) for row in uow.conn.execute(select(client_certificates).where(
        c.operator_id == operator_id).order_by(c.created_at, c.fingerprint))]
