"""Players of an operator: registration, password login (argon2) and opaque expiring session tokens."""

import asyncio
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger.db import Database
from hub.ledger.schema import player_sessions, players
from hub.ledger.uow import UnitOfWork
from hub.passwords import DEFAULT as DEFAULT_HASHING, Hashing

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,64}")
TOKEN_PREFIX = "chs_"  # makes a leaked token recognisable in logs and scanners


@dataclass(frozen=True)
class Session:
    player_id: str
    token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Players:
    def __init__(self, db: Database, session_ttl: timedelta, hashing: Hashing = DEFAULT_HASHING):
        self._db = db
        self._ttl = session_ttl
        self._hashing = hashing

    async def register(self, operator_id: str, username: str, password: str) -> str:
        if not USERNAME.fullmatch(username):
            raise DomainError(Reason.INVALID_ARGUMENT, "username must be 3..64 of [A-Za-z0-9_.-]")
        if not 8 <= len(password) <= 256:
            raise DomainError(Reason.INVALID_ARGUMENT, "password must be 8..256 characters")
        password_hash = await asyncio.to_thread(self._hashing.hasher.hash, password)
        player_id = str(uuid.uuid4())

        def _insert(uow: UnitOfWork) -> None:
            taken = uow.conn.execute(select(players.c.player_id).where(
                players.c.operator_id == operator_id, players.c.username == username)).first()
            if taken:
                raise DomainError(Reason.PLAYER_EXISTS, f"username {quote(username)} is taken")
            uow.conn.execute(players.insert().values(
                player_id=player_id, operator_id=operator_id, username=username,
                password_hash=password_hash, status="active", created_at=utcnow()))
            uow.commit()

        try:
            await self._db.run(_insert)
        except IntegrityError:  # lost a race for the same username
            raise DomainError(Reason.PLAYER_EXISTS, f"username {quote(username)} is taken") from None
        return player_id

    async def login(self, operator_id: str, username: str, password: str) -> Session:
        def _find(uow: UnitOfWork):  # type: ignore[no-untyped-def]
            return uow.conn.execute(select(players.c.player_id, players.c.password_hash).where(
                players.c.operator_id == operator_id, players.c.username == username)).one_or_none()

        row = await self._db.run(_find)
        try:
            # Verifying against the dummy keeps "no such user" as slow as "wrong password" (no probing by timing).
            await asyncio.to_thread(self._hashing.hasher.verify, row.password_hash if row else self._hashing.dummy_hash,
                                    password)
        except VerificationError:
            row = None
        if row is None:
            raise DomainError(Reason.INVALID_CREDENTIALS, "unknown username or wrong password")

        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        session = Session(row.player_id, token, now + self._ttl)

        def _store(uow: UnitOfWork) -> None:
            uow.conn.execute(player_sessions.insert().values(
                token_hash=token_hash(token), operator_id=operator_id, player_id=row.player_id,
                created_at=now, expires_at=session.expires_at))
            uow.commit()

        await self._db.run(_store)
        return session

    async def authenticate(self, operator_id: str, token: str) -> str:
        """The player id behind a session token of this operator; anything else is INVALID_SESSION."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise DomainError(Reason.INVALID_SESSION, "malformed session token")

        def _lookup(uow: UnitOfWork):  # type: ignore[no-untyped-def]
            return uow.conn.execute(select(player_sessions.c.player_id, player_sessions.c.expires_at).where(
                player_sessions.c.token_hash == token_hash(token),
                player_sessions.c.operator_id == operator_id)).one_or_none()

        row = await self._db.run(_lookup)
        if row is None or row.expires_at <= utcnow():
            raise DomainError(Reason.INVALID_SESSION, "unknown, foreign or expired session token")
        return row.player_id


def require_player(uow: UnitOfWork, operator_id: str, player_id: str) -> str:
    """The player's status (active | blocked); PLAYER_NOT_FOUND if the operator has no such player."""
    status = uow.conn.execute(select(players.c.status).where(
        players.c.operator_id == operator_id, players.c.player_id == player_id)).scalar_one_or_none()
    if status is None:
        raise DomainError(Reason.PLAYER_NOT_FOUND, f"no player {quote(player_id)}")
    return status
