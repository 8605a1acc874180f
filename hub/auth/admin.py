"""The administrator's work: operators (the tenants), their environments, IP allowlists, API keys and bound
client certificates, and the studios' keys (with their IP allowlists) for ProviderWalletService."""

import asyncio
import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, update

from hub.auth import certificates
from hub.auth.certificates import ClientCertificate
from hub.auth.credentials import new_key_id, new_secret, new_studio_key_id
from hub.auth.principal import ENVIRONMENTS, OPERATOR_SCOPES
from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger.db import Database
from hub.ledger.schema import api_keys, operators, studio_keys
from hub.ledger.uow import UnitOfWork
from hub.page_tokens import PageTokens
from hub.passwords import DEFAULT as DEFAULT_HASHING, Hashing

OPERATOR_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
STUDIO_ID = re.compile(r"[a-z0-9_-]{1,32}")  # a studio's name in game ids ("<studio>:<game>")
MAX_CIDRS = 50


@dataclass(frozen=True)
class OperatorRecord:
    operator_id: str
    name: str
    environment: str
    ip_allowlist: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    operator_id: str
    scopes: tuple[str, ...]
    environment: str
    has_secret: bool
    public_key: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    """What CreateApiKey shows once: the secret and a generated private key are stored nowhere."""

    key: ApiKeyRecord
    secret: str
    private_key_pem: str


@dataclass(frozen=True)
class StudioKeyRecord:
    key_id: str
    studio_id: str
    public_key: str
    created_at: datetime
    revoked_at: datetime | None
    ip_allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewStudioKey:
    """What CreateStudioKey shows once: a generated private key is stored nowhere."""

    key: StudioKeyRecord
    private_key_pem: str


def _studio_key(row: dict[str, object]) -> StudioKeyRecord:
    return StudioKeyRecord(str(row["key_id"]), str(row["studio_id"]), str(row["public_key"]),
                           row["created_at"], row["revoked_at"],  # type: ignore[arg-type]
                           tuple(str(row["ip_allowlist"]).split()))


def signing_key(public_key: str, generate: bool) -> tuple[str, str]:
    """(base64 public key, PEM private key or ""): the given public key checked, or a new pair."""
    if public_key:
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        except (ValueError, binascii.Error):
            raise DomainError(Reason.INVALID_ARGUMENT,
                              "public_key must be base64 of a 32-byte Ed25519 public key") from None
        return public_key, ""
    if not generate:
        return "", ""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    return base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode(), private_pem


def allowlist(cidrs: list[str]) -> str:
    """CIDRs as stored: validated, normalized, space-separated, each once; at most MAX_CIDRS."""
    if len(cidrs) > MAX_CIDRS:
        raise DomainError(Reason.INVALID_ARGUMENT, f"at most {MAX_CIDRS} CIDRs")
    try:
        networks = [str(ipaddress.ip_network(cidr.strip(), strict=False)) for cidr in cidrs]
    except ValueError:
        raise DomainError(Reason.INVALID_ARGUMENT, "each entry must be an IPv4 or IPv6 CIDR") from None
    return " ".join(dict.fromkeys(networks))


def _operator(row: dict[str, object]) -> OperatorRecord:
    return OperatorRecord(str(row["operator_id"]), str(row["name"]), str(row["environment"]),
                          tuple(str(row["ip_allowlist"]).split()), row["created_at"])  # type: ignore[arg-type]


def _key(row: dict[str, object]) -> ApiKeyRecord:
    return ApiKeyRecord(str(row["key_id"]), str(row["operator_id"]), tuple(str(row["scopes"]).split()),
                        str(row["environment"]), row["secret_hash"] is not None, str(row["public_key"] or ""),
                        row["created_at"], row["revoked_at"])  # type: ignore[arg-type]


def _get_operator(uow: UnitOfWork, operator_id: str) -> OperatorRecord:
    row = uow.conn.execute(select(operators).where(operators.c.operator_id == operator_id)).mappings().first()
    if row is None:
        raise DomainError(Reason.OPERATOR_NOT_FOUND, f"no operator {quote(operator_id)}")
    return _operator(dict(row))


def _environment(environment: str) -> str:
    if environment not in ENVIRONMENTS:
        raise DomainError(Reason.INVALID_ARGUMENT, "environment must be sandbox or production")
    return environment


class OperatorAdmin:
    def __init__(self, db: Database, page_tokens: PageTokens, hashing: Hashing = DEFAULT_HASHING):
        self._db = db
        self._tokens = page_tokens
        self._hashing = hashing

    async def create_operator(self, operator_id: str, name: str, environment: str) -> OperatorRecord:
        if not OPERATOR_ID.fullmatch(operator_id):
            raise DomainError(Reason.INVALID_ARGUMENT, "operator_id must be 1..64 of [A-Za-z0-9_.-]")
        _environment(environment)

        def _create(uow: UnitOfWork) -> OperatorRecord:
            exists = uow.conn.execute(select(operators.c.operator_id).where(
                operators.c.operator_id == operator_id)).first()
            if exists:
                raise DomainError(Reason.OPERATOR_EXISTS, f"operator {quote(operator_id)} exists")
            uow.conn.execute(operators.insert().values(operator_id=operator_id, name=name or operator_id,
                                                       created_at=utcnow(), environment=environment,
                                                       ip_allowlist=""))
            created = _get_operator(uow, operator_id)
            uow.commit()
            return created

        return await self._db.run(_create)

    async def get_operator(self, operator_id: str) -> OperatorRecord:
        return await self._db.run(lambda uow: _get_operator(uow, operator_id))

    async def list_operators(self, page_size: int, page_token: str) -> tuple[list[OperatorRecord], str]:
        if not 0 <= page_size <= 500:
            raise DomainError(Reason.INVALID_ARGUMENT, "page_size must be 1..500 (0 means 100)")
        size = page_size or 100
        after = str(self._tokens.read(page_token, ("operators",))[0]) if page_token else None

        def _list(uow: UnitOfWork) -> list[OperatorRecord]:
            query = select(operators).order_by(operators.c.operator_id).limit(size + 1)
            if after is not None:
                query = query.where(operators.c.operator_id > after)
            return [_operator(dict(row)) for row in uow.conn.execute(query).mappings()]

        found = await self._db.run(_list)
        page = found[:size]
        next_token = self._tokens.issue(("operators",), [page[-1].operator_id]) if len(found) > size else ""
        return page, next_token

    async def set_environment(self, operator_id: str, environment: str) -> OperatorRecord:
        _environment(environment)
        return await self._update_operator(operator_id, environment=environment)

    async def set_ip_allowlist(self, operator_id: str, cidrs: list[str]) -> OperatorRecord:
        return await self._update_operator(operator_id, ip_allowlist=allowlist(cidrs))

    async def _update_operator(self, operator_id: str, **values: str) -> OperatorRecord:
        def _update(uow: UnitOfWork) -> OperatorRecord:
            _get_operator(uow, operator_id)
            uow.conn.execute(update(operators).where(operators.c.operator_id == operator_id).values(**values))
            updated = _get_operator(uow, operator_id)
            uow.commit()
            return updated

        return await self._db.run(_update)

    async def create_api_key(self, operator_id: str, scopes: list[str], public_key: str = "",
                             generate_signing_key: bool = False) -> NewApiKey:
        unknown = sorted(set(scopes) - set(OPERATOR_SCOPES))
        if unknown:
            raise DomainError(Reason.INVALID_ARGUMENT, f"unknown scope {quote(unknown[0])}; operator scopes are "
                              + " ".join(OPERATOR_SCOPES))
        public_key, private_pem = signing_key(public_key, generate_signing_key)
        secret = new_secret()
        secret_hash = await asyncio.to_thread(self._hashing.hasher.hash, secret)
        key_id = new_key_id()
        granted = " ".join(s for s in OPERATOR_SCOPES if s in (set(scopes) or set(OPERATOR_SCOPES)))

        def _create(uow: UnitOfWork) -> ApiKeyRecord:
            operator = _get_operator(uow, operator_id)
            uow.conn.execute(api_keys.insert().values(
                key_id=key_id, operator_id=operator_id, secret_hash=secret_hash, public_key=public_key or None,
                scopes=granted, environment=operator.environment, created_at=utcnow()))
            row = uow.conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().one()
            uow.commit()
            return _key(dict(row))

        return NewApiKey(await self._db.run(_create), secret, private_pem)

    async def list_api_keys(self, operator_id: str) -> list[ApiKeyRecord]:
        def _list(uow: UnitOfWork) -> list[ApiKeyRecord]:
            _get_operator(uow, operator_id)
            rows = uow.conn.execute(select(api_keys).where(api_keys.c.operator_id == operator_id)
                                    .order_by(api_keys.c.created_at.desc(), api_keys.c.key_id)).mappings()
            return [_key(dict(row)) for row in rows]

        return await self._db.run(_list)

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        def _revoke(uow: UnitOfWork) -> ApiKeyRecord:
            row = uow.conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
            if row is None:
                raise DomainError(Reason.API_KEY_NOT_FOUND, f"no API key {quote(key_id)}")
            if row["revoked_at"] is None:
                uow.conn.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=utcnow()))
                row = uow.conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().one()
            uow.commit()
            return _key(dict(row))

        return await self._db.run(_revoke)

    # -- client certificates (hub.auth.certificates) --------------------------------------------------------

    async def bind_client_certificate(self, operator_id: str, certificate_pem: str,
                                      fingerprint: str) -> ClientCertificate:
        found, subject = certificates.requested(certificate_pem, fingerprint)

        def _bind(uow: UnitOfWork) -> ClientCertificate:
            _get_operator(uow, operator_id)
            bound = certificates.bind(uow, operator_id, found, subject)
            uow.commit()
            return bound

        return await self._db.run(_bind)

    async def unbind_client_certificate(self, operator_id: str, fingerprint: str) -> ClientCertificate:
        found = certificates.parse_fingerprint(fingerprint)

        def _unbind(uow: UnitOfWork) -> ClientCertificate:
            _get_operator(uow, operator_id)
            unbound = certificates.unbind(uow, operator_id, found)
            uow.commit()
            return unbound

        return await self._db.run(_unbind)

    async def list_client_certificates(self, operator_id: str) -> list[ClientCertificate]:
        def _list(uow: UnitOfWork) -> list[ClientCertificate]:
            _get_operator(uow, operator_id)
            return certificates.listed(uow, operator_id)

        return await self._db.run(_list)

    # -- studio keys ---------------------------------------------------------------------------------------

    async def create_studio_key(self, studio_id: str, public_key: str = "",
                                generate_signing_key: bool = False) -> NewStudioKey:
        if not STUDIO_ID.fullmatch(studio_id):
            raise DomainError(Reason.INVALID_ARGUMENT, "studio_id must be 1..32 of [a-z0-9_-]")
        public_key, private_pem = signing_key(public_key, generate_signing_key)
        if not public_key:
            raise DomainError(Reason.INVALID_ARGUMENT, "give public_key or set generate_signing_key")
        key_id = new_studio_key_id()

        def _create(uow: UnitOfWork) -> StudioKeyRecord:
            uow.conn.execute(studio_keys.insert().values(key_id=key_id, studio_id=studio_id, public_key=public_key,
                                                         created_at=utcnow()))
            row = uow.conn.execute(select(studio_keys).where(studio_keys.c.key_id == key_id)).mappings().one()
            uow.commit()
            return _studio_key(dict(row))

        return NewStudioKey(await self._db.run(_create), private_pem)

    async def list_studio_keys(self, studio_id: str) -> list[StudioKeyRecord]:
        def _list(uow: UnitOfWork) -> list[StudioKeyRecord]:
            rows = uow.conn.execute(select(studio_keys).where(studio_keys.c.studio_id == studio_id)
                                    .order_by(studio_keys.c.created_at.desc(), studio_keys.c.key_id)).mappings()
            return [_studio_key(dict(row)) for row in rows]

        return await self._db.run(_list)

    async def revoke_studio_key(self, key_id: str) -> StudioKeyRecord:
        def _revoke(uow: UnitOfWork) -> StudioKeyRecord:
            where = studio_keys.c.key_id == key_id
            row = uow.conn.execute(select(studio_keys).where(where)).mappings().first()
            if row is None:
                raise DomainError(Reason.API_KEY_NOT_FOUND, f"no studio key {quote(key_id)}")
            if row["revoked_at"] is None:
                uow.conn.execute(update(studio_keys).where(where).values(revoked_at=utcnow()))
                row = uow.conn.execute(select(studio_keys).where(where)).mappings().one()
            uow.commit()
            return _studio_key(dict(row))

        return await self._db.run(_revoke)

    async def set_studio_key_ip_allowlist(self, key_id: str, cidrs: list[str]) -> StudioKeyRecord:
        stored = allowlist(cidrs)

        def _update(uow: UnitOfWork) -> StudioKeyRecord:
            where = studio_keys.c.key_id == key_id
            if uow.conn.execute(select(studio_keys.c.key_id).where(where)).first() is None:
                raise DomainError(Reason.API_KEY_NOT_FOUND, f"no studio key {quote(key_id)}")
            uow.conn.execute(update(studio_keys).where(where).values(ip_allowlist=stored))
            row = uow.conn.execute(select(studio_keys).where(where)).mappings().one()
            uow.commit()
            return _studio_key(dict(row))

        return await self._db.run(_update)
