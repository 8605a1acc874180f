"""Helpers shared by tests and benchmarks: the test MariaDB server, throwaway databases, a live hub on
port 0 and its client stubs, and credentials to call it with. Fixtures live in conftest.py; import helpers
from here, never from conftest."""

import asyncio
import base64
import contextlib
import functools
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pymysql
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import IntegrityError

from adapters.base import ProviderAdapter
from casinohub.v1 import (
    common_pb2,
    game_service_pb2_grpc,
    player_service_pb2,
    player_service_pb2_grpc,
    wallet_service_pb2,
    wallet_service_pb2_grpc,
)
from hub.auth.credentials import Key, body_digest, mint_token, new_key_id, signed_text
from hub.auth.principal import OPERATOR_SCOPES
from hub.clock import utcnow
from hub.config import Config
from hub.ledger.schema import api_keys, hub_keys, ledger_transactions, postings
from hub.server import HubServer, create_server

MARIADB_SERVER = os.environ.get("CASINOHUB_TEST_MARIADB", "root@127.0.0.1:3306")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def throwaway_mariadb_database(charset: str | None = None) -> Iterator[str]:
    """Create a database on the shared MariaDB server, yield its URL, drop it. Fails (never skips) in CI
    when MariaDB is unreachable. It gets the server's default character set and collation unless charset
    is given: the hub must not depend on how its database was created."""
    user, _, hostport = MARIADB_SERVER.partition("@")
    host, _, port = hostport.partition(":")
    name = f"casinohub_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = pymysql.connect(host=host, port=int(port or 3306), user=user, password="", connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"MariaDB at {MARIADB_SERVER} is required in CI and unreachable: {exc}")
        pytest.skip(f"MariaDB at {MARIADB_SERVER} unreachable: {exc}")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}" + (f" CHARACTER SET {charset}" if charset else ""))
    yield f"mysql+pymysql://{user}@{host}:{port or 3306}/{name}?charset=utf8mb4"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {name}")
    conn.close()


@functools.cache
def _shared_server_engine(database_url: str) -> Engine:
    """One pooled engine per database of the shared MariaDB server, kept for the test process: connecting
    afresh (handshake and dialect set-up) cost ~35 ms a call, and hubs start and books are read by the hundred."""
    return create_engine(database_url, pool_size=2, pool_pre_ping=True)


@contextlib.contextmanager
def helper_engine(database_url: str) -> Iterator[Engine]:
    """An engine for a helper's reads and writes: pooled on the shared MariaDB server, which no test stops;
    anywhere else (SQLite files removed after their test, a test's own MariaDB it may kill) a fresh one."""
    user, _, hostport = MARIADB_SERVER.partition("@")
    if database_url.startswith(f"mysql+pymysql://{user}@{hostport}/"):
        yield _shared_server_engine(database_url)
        return
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def operator_key(database_url: str, operator_id: str, scopes: tuple[str, ...] = OPERATOR_SCOPES,
                 public_key: str | None = None) -> str:
    """A new API key of the operator, written straight to the database (AdminService.CreateApiKey is the
    product's way; tests of it are in tests/e2e/test_security.py). Returns its key id."""
    key_id = new_key_id()
    with helper_engine(database_url) as engine, engine.begin() as conn:
        conn.execute(api_keys.insert().values(key_id=key_id, operator_id=operator_id, secret_hash=None,
                                              public_key=public_key, scopes=" ".join(scopes),
                                              environment="sandbox", created_at=utcnow()))
    return key_id


def token_key(database_url: str) -> bytes:
    """The key hubs on this database sign access tokens with: created here if no hub has yet, as a hub does."""
    query = select(hub_keys.c.secret).where(hub_keys.c.name == "access_tokens")
    with helper_engine(database_url) as engine:
        try:
            with engine.begin() as conn:
                secret = conn.execute(query).scalar_one_or_none()
                if secret is None:
                    secret = secrets.token_hex(32)
                    conn.execute(hub_keys.insert().values(name="access_tokens", secret=secret, created_at=utcnow()))
        except IntegrityError:  # a hub starting at the same moment made it first
            with engine.connect() as conn:
                secret = conn.execute(query).scalar_one()
    return bytes.fromhex(secret)


def access_token(database_url: str, operator_id: str, scopes: tuple[str, ...] = OPERATOR_SCOPES,
                 ttl_s: int = 86_400) -> str:
    """A valid access token of a new key of the operator, as AuthService.IssueToken would return it."""
    key = Key(operator_key(database_url, operator_id, scopes), operator_id, None, None, frozenset(scopes),
              "sandbox", False, ())
    return mint_token(token_key(database_url), key, frozenset(scopes), ttl_s).token


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def signed(method: str, body: bytes | None, key_id: str, private_key: Ed25519PrivateKey,
           timestamp: int | None = None, nonce: str | None = None) -> tuple[tuple[str, str], ...]:
    """Request-signature metadata for one call, as an operator's service computes it (README,
    "Authentication"): method is the gRPC path, body the request bytes (None for a stream)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or uuid.uuid4().hex
    signature = private_key.sign(signed_text(method, str(timestamp), nonce, body_digest(body)))
    return (("x-casinohub-key-id", key_id), ("x-casinohub-timestamp", str(timestamp)),
            ("x-casinohub-nonce", nonce), ("x-casinohub-signature", base64.urlsafe_b64encode(signature).decode()))


@dataclass
class Client:
    """Stubs for a live hub, all calls made as this test's own operator (tenant isolation): pass
    `metadata=client.metadata`, the credentials of a key of that operator with every operator scope."""

    server: HubServer
    port: int
    channel: grpc.aio.Channel
    operator_id: str
    database_url: str
    # Not copied by dataclasses.replace (init=False): a copy for another operator gets that operator's token.
    token: str = field(default="", init=False, repr=False)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        if not self.token:  # made on first use: the hub creates its token key when it starts
            self.token = access_token(self.database_url, self.operator_id)
        return bearer(self.token)

    @property
    def games(self) -> game_service_pb2_grpc.GameServiceStub:
        return game_service_pb2_grpc.GameServiceStub(self.channel)

    @property
    def wallet(self) -> wallet_service_pb2_grpc.WalletServiceStub:
        return wallet_service_pb2_grpc.WalletServiceStub(self.channel)

    @property
    def players(self) -> player_service_pb2_grpc.PlayerServiceStub:
        return player_service_pb2_grpc.PlayerServiceStub(self.channel)

    async def new_player(self, deposit: int = 0, currency: str = "USD") -> tuple[str, str]:
        """Register, log in and optionally fund a player; returns (player_id, session_token)."""
        username = f"p{uuid.uuid4().hex[:10]}"
        await self.players.RegisterPlayer(
            player_service_pb2.RegisterPlayerRequest(username=username, password="correct-horse"),
            metadata=self.metadata)
        login = await self.players.Login(
            player_service_pb2.LoginRequest(username=username, password="correct-horse"), metadata=self.metadata)
        if deposit:
            await self.wallet.Deposit(wallet_service_pb2.DepositRequest(
                player_id=login.player_id, amount=common_pb2.Money(currency=currency, amount_minor=deposit),
                idempotency_key=f"seed-{uuid.uuid4()}"), metadata=self.metadata)
        return login.player_id, login.session_token

    async def balance(self, player_id: str, currency: str = "USD") -> int:
        response = await self.wallet.GetBalance(
            wallet_service_pb2.GetBalanceRequest(player_id=player_id, currency=currency), metadata=self.metadata)
        return response.balance.amount_minor

    def ledger_counts(self) -> tuple[int, int]:
        """(ledger transactions, postings) of this operator, read straight from the database."""
        with helper_engine(self.database_url) as engine, engine.connect() as conn:
            return (
                conn.execute(select(func.count()).select_from(ledger_transactions)
                             .where(ledger_transactions.c.operator_id == self.operator_id)).scalar_one(),
                conn.execute(select(func.count()).select_from(postings)
                             .where(postings.c.operator_id == self.operator_id)).scalar_one(),
            )

    def posting_sums(self) -> dict[str, int]:
        with helper_engine(self.database_url) as engine, engine.connect() as conn:
            rows = conn.execute(select(postings.c.currency, func.sum(postings.c.amount))
                                .where(postings.c.operator_id == self.operator_id)
                                .group_by(postings.c.currency)).all()
        return {currency: int(total) for currency, total in rows}


# argon2 at the lowest cost (hub/passwords.py): every test registers players and keys, and the production cost
# (t=3, 64 MiB) made hashing most of the suite's CPU time. Hashes of any cost verify alike.
CHEAP_HASHES = {"password_hash_time_cost": 1, "password_hash_memory_kib": 64}


def hub_config(database_url: str, **overrides: object) -> Config:
    """A hub on a free port with its own operator, so tests sharing a database never see each other."""
    settings: dict[str, object] = {
        "listen": "127.0.0.1:0", "database_url": database_url, "sandbox_operator_id": f"op-{uuid.uuid4().hex[:12]}",
        "health_interval_s": 0.2, "shutdown_grace_s": 5.0, "providers": (), **CHEAP_HASHES, **overrides}
    return Config(**settings)  # type: ignore[arg-type]


async def start_hub(database_url: str, adapters: dict[str, ProviderAdapter] | None, **overrides: object) -> Client:
    """adapters=None builds them from the config's providers through the registry, as `hub serve` does."""
    config = hub_config(database_url, **overrides)
    server, port = await create_server(config, adapters)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    # Off the event loop: a test's TCP proxy in front of the database runs on this loop.
    client = Client(server, port, channel, config.sandbox_operator_id, database_url)
    client.token = await asyncio.to_thread(access_token, database_url, config.sandbox_operator_id)
    return client
