"""Operator authentication: API keys, access tokens (JWT), Ed25519 request signatures, IP allowlists.

An API key (ck_...) belongs to one operator and environment and holds scopes. It has a secret, of which the
hub keeps only an argon2 hash (AuthService.IssueToken exchanges id and secret for a short-lived HS256 JWT),
and/or the public half of an Ed25519 key pair, with which the operator signs each request:

    x-casinohub-key-id, x-casinohub-timestamp (unix seconds), x-casinohub-nonce (16..64 of [A-Za-z0-9_-]),
    x-casinohub-signature: base64url Ed25519 signature over
        "casinohub-v1\\n<method>\\n<timestamp>\\n<nonce>\\n<hex SHA-256 of the request bytes>"
    where <method> is the full gRPC path ("/casinohub.v1.WalletService/Deposit"). A streaming RPC's body is a
    stream, so its signature covers the call alone: the last line is the word "stream".

A studio signs its ProviderWalletService calls the same way with a studio key (sk_..., a row of studio_keys):
the interceptor decides the principal's kind from the key, never from a header the caller chooses.

A signed timestamp may be signature_window_s from the hub's clock; each nonce is accepted once per key across
every hub process (a row in auth_nonces, kept past the window, then swept). A key revoked, or an allowlist
changed, reaches signatures at once and tokens within CACHE_TTL_S (a token check reads no database); so do
an operator's bound client certificates (hub.auth.certificates) and a studio key's own IP allowlist.
A key belongs to one environment (sandbox or production, its operator's when it was made) and works only on
a hub of that environment; a production hub also refuses the sandbox operator's keys (hub.environments).
"""

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import structlog
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, select

from hub.auth import certificates
from hub.auth.principal import ADMIN_SCOPE, STUDIO_SCOPE, Principal
from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger.db import Database
from hub.ledger.schema import api_keys, auth_nonces, operators, studio_keys
from hub.ledger.uow import UnitOfWork
from hub.passwords import DEFAULT as DEFAULT_HASHING, Hashing

log = structlog.get_logger("hub.auth")
ISSUER = "casinohub"
ALGORITHM = "HS256"
CACHE_TTL_S = 5.0
KEY_ID = re.compile(r"ck_[0-9a-f]{16}")
STUDIO_KEY_ID = re.compile(r"sk_[0-9a-f]{16}")
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
STREAM_BODY = "stream"
KEY_ID_HEADER, TIMESTAMP_HEADER = "x-casinohub-key-id", "x-casinohub-timestamp"
NONCE_HEADER, SIGNATURE_HEADER = "x-casinohub-nonce", "x-casinohub-signature"
SIGNATURE_HEADERS = (KEY_ID_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowlist(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in text.split())


def peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """grpc's peer string ("ipv4:10.0.0.1:5123", "ipv6:[::1]:5123") as an address; None for others."""
    kind, _, rest = peer.partition(":")
    host = rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def signed_text(method: str, timestamp: str, nonce: str, body_digest: str) -> bytes:
    return f"casinohub-v1\n{method}\n{timestamp}\n{nonce}\n{body_digest}".encode()


def body_digest(body: bytes | None) -> str:
    return STREAM_BODY if body is None else hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Key:
    """An API key and what its operator allows, as read for one check."""

    key_id: str
    operator_id: str
    secret_hash: str | None
    public_key: str | None
    scopes: frozenset[str]
    environment: str
    revoked: bool
    allowlist: tuple[Network, ...]
    certificates: frozenset[str] = frozenset()  # fingerprints of the operator's bound client certificates


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    scopes: tuple[str, ...]


def _read_studio_key(uow: UnitOfWork, key_id: str) -> Key | None:
    """A studio key as a Key: no operator, no secret, the key's own allowlist; its studio where the operator
    would be."""
    row = uow.conn.execute(select(studio_keys).where(studio_keys.c.key_id == key_id)).mappings().first()
    if row is None:
        return None
    return Key(row["key_id"], row["studio_id"], None, row["public_key"], frozenset({STUDIO_SCOPE}), "",
               row["revoked_at"] is not None, parse_allowlist(row["ip_allowlist"]))


def _read_key(uow: UnitOfWork, key_id: str) -> Key | None:
    row = uow.conn.execute(
        select(api_keys, operators.c.ip_allowlist)
        .join(operators, operators.c.operator_id == api_keys.c.operator_id)
        .where(api_keys.c.key_id == key_id)).mappings().first()
    if row is None:
        return None
    return Key(row["key_id"], row["operator_id"], row["secret_hash"], row["public_key"],
               frozenset(row["scopes"].split()), row["environment"], row["revoked_at"] is not None,
               parse_allowlist(row["ip_allowlist"]), certificates.bound(uow, row["operator_id"]))


class Authenticator:
    def __init__(self, db: Database, token_key: bytes, token_ttl_s: int, signature_window_s: int,
                 admin_token: str, environment: str = "sandbox", sandbox_operator_id: str = "",
                 hashing: Hashing = DEFAULT_HASHING):
        self._db = db
        self._hashing = hashing
        # A key works only on a hub of its own environment; a production hub refuses the sandbox operator.
        self.environment = environment
        self._sandbox_operator_id = sandbox_operator_id
        self._token_key = token_key
        self._token_ttl_s = token_ttl_s
        self.window_s = signature_window_s
        self._admin_token = admin_token.encode()
        self._keys: dict[str, tuple[float, Key]] = {}  # key_id -> (read at, key): the token path's cache
        self.cache_ttl_s = CACHE_TTL_S

    # --- client credentials -> access token ---------------------------------------------------------------

    async def issue_token(self, key_id: str, secret: str, scopes: list[str], peer: str,
                          client_cert: str | None = None) -> IssuedToken:
        key = await self._db.run(lambda uow: _read_key(uow, key_id)) if KEY_ID.fullmatch(key_id) else None
        # Verifying against the dummy keeps "no such key" as slow as "wrong secret" (no probing of key ids by timing).
        stored = key.secret_hash if key is not None and key.secret_hash else self._hashing.dummy_hash
        try:
            matches: bool = await asyncio.to_thread(self._hashing.hasher.verify, stored, secret)
        except (VerificationError, InvalidHashError):
            matches = False
        if key is None or not key.secret_hash or not matches:
            raise DomainError(Reason.INVALID_CLIENT_CREDENTIALS, "unknown API key or wrong secret")
        self._check_key(key, peer, client_cert=client_cert)
        wanted = frozenset(scopes) or key.scopes
        if not wanted <= key.scopes:
            missing = " ".join(sorted(wanted - key.scopes))
            raise DomainError(Reason.SCOPE_MISSING, f"the key does not hold {missing[:80]}",
                              metadata={"scope": missing[:80]})
        return mint_token(self._token_key, key, wanted, self._token_ttl_s)

    # --- bearer tokens ------------------------------------------------------------------------------------

    async def bearer(self, token: str, peer: str, client_cert: str | None = None) -> Principal:
        """The administrator's token from the configuration, or an access token this hub issued."""
        if self._admin_token and hmac.compare_digest(token.encode(), self._admin_token):
            return Principal("", "admin", frozenset({ADMIN_SCOPE}), "", "admin")
        try:
            claims = jwt.decode(token, self._token_key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss", "key", "scope"]})
        except jwt.ExpiredSignatureError:
            raise DomainError(Reason.TOKEN_EXPIRED, "the access token has expired; issue a new one") from None
        except jwt.InvalidTokenError:
            raise DomainError(Reason.TOKEN_INVALID, "the access token is malformed or not this hub's") from None
        key = await self._cached_key(str(claims["key"]))
        if key is None or key.operator_id != claims["sub"]:
            raise DomainError(Reason.TOKEN_INVALID, "the access token names no key of its operator")
        self._check_key(key, peer, client_cert=client_cert)
        return Principal(key.operator_id, key.key_id, frozenset(str(claims["scope"]).split()) & key.scopes,
                         key.environment, "token")

    async def _cached_key(self, key_id: str) -> Key | None:
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and now - cached[0] < self.cache_ttl_s:
            return cached[1]
        key = await self._db.run(lambda uow: _read_key(uow, key_id))
        if key is not None:  # misses are not cached: a key created a moment ago works at once
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[key_id] = (now, key)
        return key

    # --- request signatures -------------------------------------------------------------------------------

    async def signature(self, metadata: dict[str, str], method: str, body: bytes | None, peer: str,
                        client_cert: str | None = None) -> Principal:
        key_id, timestamp, nonce, signature = (metadata.get(h, "") for h in SIGNATURE_HEADERS)
        try:
            raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except (ValueError, binascii.Error):
            raw_signature = b""
        studio = STUDIO_KEY_ID.fullmatch(key_id) is not None
        if not ((studio or KEY_ID.fullmatch(key_id)) and timestamp.isdigit() and len(timestamp) <= 12
                and NONCE.fullmatch(nonce) and len(raw_signature) == 64):
            raise DomainError(Reason.SIGNATURE_INVALID, "a signed request needs " + ", ".join(SIGNATURE_HEADERS)
                              + " (key id ck_... or sk_..., unix seconds, 16..64 of [A-Za-z0-9_-], base64url signature)")
        if abs(time.time() - int(timestamp)) > self.window_s:
            raise DomainError(Reason.TIMESTAMP_OUT_OF_WINDOW,
                              f"the signed timestamp is more than {self.window_s} s from the hub's clock",
                              metadata={"window_s": str(self.window_s)})
        message = signed_text(method, timestamp, nonce, body_digest(body))
        expires_at = utcnow() + timedelta(seconds=2 * self.window_s)  # past it, the timestamp check refuses

        def _verify_and_spend_nonce(uow: UnitOfWork) -> Key:
            key = _read_studio_key(uow, key_id) if studio else _read_key(uow, key_id)
            if key is None or not key.public_key:
                raise DomainError(Reason.INVALID_CLIENT_CREDENTIALS, "unknown API key, or it has no signing key")
            try:
                Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key)).verify(raw_signature, message)
            except InvalidSignature:
                raise DomainError(Reason.SIGNATURE_INVALID, "the request signature does not verify") from None
            self._check_key(key, peer, studio, client_cert)
            # A racing process's insert of the same nonce fails ours; Database.run reruns this and finds it.
            seen = uow.conn.execute(select(auth_nonces.c.nonce).where(
                auth_nonces.c.key_id == key_id, auth_nonces.c.nonce == nonce)).first()
            if seen:
                raise DomainError(Reason.NONCE_REUSED, "this nonce was already used with this key")
            uow.conn.execute(auth_nonces.insert().values(key_id=key_id, nonce=nonce,
                                                         operator_id="" if studio else key.operator_id,
                                                         expires_at=expires_at))
            uow.commit()
            return key

        key = await self._db.run(_verify_and_spend_nonce)
        if studio:
            return Principal("", key.key_id, key.scopes, "", "studio", studio_id=key.operator_id)
        return Principal(key.operator_id, key.key_id, key.scopes, key.environment, "signature")

    async def sweep_nonces(self) -> int:
        """Forget nonces whose timestamps the window refuses anyway; returns how many."""

        def _sweep(uow: UnitOfWork) -> int:
            count = uow.conn.execute(delete(auth_nonces).where(auth_nonces.c.expires_at < utcnow())).rowcount
            uow.commit()
            return int(count or 0)

        return await self._db.run(_sweep)

    def _check_key(self, key: Key, peer: str, studio: bool = False, client_cert: str | None = None) -> None:
        """client_cert: the fingerprint of the certificate the peer presented over mutual TLS, if any."""
        if key.revoked:
            raise DomainError(Reason.API_KEY_REVOKED, "this API key was revoked")
        if studio:  # a studio key belongs to no operator or environment (a production hub refuses mock studios)
            _check_address(key, peer, "the studio key's")
            return
        if self.environment == "production" and key.operator_id == self._sandbox_operator_id:
            raise DomainError(Reason.SANDBOX_OPERATOR_REFUSED,
                              "a production hub refuses the sandbox operator; use an operator of your own")
        if key.environment != self.environment:
            raise DomainError(Reason.ENVIRONMENT_MISMATCH, f"this is a {key.environment} key and this hub runs "
                              f"{self.environment}; use a key made for {self.environment}",
                              metadata={"key_environment": key.environment, "hub_environment": self.environment})
        _check_address(key, peer, "the operator's")
        certificates.check(key.certificates, client_cert)


def _check_address(key: Key, peer: str, whose: str) -> None:
    if key.allowlist:
        address = peer_address(peer)
        if address is None or not any(address in network for network in key.allowlist):
            raise DomainError(Reason.IP_NOT_ALLOWED, f"the caller's address is not in {whose} allowlist")


def mint_token(token_key: bytes, key: Key, scopes: frozenset[str], ttl_s: int) -> IssuedToken:
    """An access token for the key's operator (IssueToken, after the secret was checked)."""
    now = int(time.time())
    granted = tuple(sorted(scopes))
    claims = {"iss": ISSUER, "sub": key.operator_id, "key": key.key_id, "env": key.environment,
              "scope": " ".join(granted), "iat": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, token_key, algorithm=ALGORITHM, headers={"kid": key.key_id})
    expires_at = datetime.fromtimestamp(now + ttl_s, UTC).replace(tzinfo=None)  # naive UTC, as the hub stores
    return IssuedToken(token, expires_at, granted)


def new_key_id() -> str:
    return f"ck_{secrets.token_hex(8)}"


def new_studio_key_id() -> str:
    return f"sk_{secrets.token_hex(8)}"


def new_secret() -> str:
    return f"cks_{secrets.token_urlsafe(32)}"
