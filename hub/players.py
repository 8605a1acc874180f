"""Players of an operator: registration, password login (argon2) and sessions.

A session is one login. Login issues a short-lived session token (LaunchGame, Play) and a refresh token;
RefreshSession exchanges the refresh token for a new pair and the old pair stops working (rotation). The
tokens of one login are its family: a refresh token presented a second time was copied by someone, so the
whole family is revoked (REFRESH_TOKEN_REUSED), the thief's new pair and the player's alike. A login ends
at Logout, session_idle_s after it was last used (any call presenting one of its tokens), session_max_s after
Login, when the player logs in once more than the operator's cap allows (the oldest login ends), or when it
has lasted the player's session time limit (hub.responsible).

Tokens are 256 random bits; only their SHA-256 is stored (a fast hash suffices for random secrets, and a
database leak yields no usable token) and looked up by equality, byte for byte, within the operator.
"""

import asyncio
import hashlib
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2.exceptions import VerificationError
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger import limits
from hub.ledger.book import Book
from hub.ledger.db import Database
from hub.ledger.schema import (
    player_limits,
    player_session_tokens as tokens,
    player_sessions as sessions,
    players,
)
from hub.ledger.uow import UnitOfWork
from hub.page_tokens import PageTokens
from hub.passwords import DEFAULT as DEFAULT_HASHING, Hashing

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,64}")
TOKEN_PREFIX = "chs_"  # makes a leaked token recognisable in logs and scanners
REFRESH_PREFIX = "chr_"
MAX_TOKEN = 128
USE_GRANULARITY = timedelta(minutes=1)  # how often a betting stream records the session's use
SESSION, REFRESH = "session", "refresh"
# Why a login ended (player_sessions.end_reason), and what a token of it is refused with afterwards.
LOGOUT, SESSION_CAP, IDLE, REUSED, TIME_LIMIT = "LOGOUT", "SESSION_CAP", "IDLE", "REFRESH_TOKEN_REUSED", "SESSION_TIME_LIMIT"
_ENDED = {LOGOUT: Reason.SESSION_REVOKED, SESSION_CAP: Reason.SESSION_REVOKED, REUSED: Reason.SESSION_REVOKED,
          IDLE: Reason.SESSION_EXPIRED, TIME_LIMIT: Reason.SESSION_TIME_LIMIT_REACHED}


@dataclass(frozen=True)
class SessionSettings:
    token_ttl: timedelta = timedelta(minutes=15)
    max_age: timedelta = timedelta(hours=24)
    idle: timedelta = timedelta(minutes=30)


async def default_cap(operator_id: str) -> int:
    return 5


@dataclass(frozen=True)
class Session:
    """What Login and RefreshSession answer."""

    player_id: str
    token: str
    expires_at: datetime
    session_id: str = ""
    refresh_token: str = ""
    refresh_expires_at: datetime | None = None


@dataclass(frozen=True)
class LiveSession:
    session_id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    idle_expires_at: datetime


@dataclass(frozen=True)
class SessionPage:
    sessions: tuple[LiveSession, ...]
    next_page_token: str


@dataclass(frozen=True)
class Authenticated:
    """The player behind a session token, and the login it belongs to."""

    player_id: str
    session_id: str
    started_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


class Players:
    def __init__(self, db: Database, settings: SessionSettings, page_tokens: PageTokens,
                 hashing: Hashing = DEFAULT_HASHING, session_cap: Callable[[str], Awaitable[int]] = default_cap):
        """session_cap(operator_id): the live logins a player of the operator may hold (hub.operator_limits)."""
        self._db = db
        self._settings = settings
        self._session_cap = session_cap
        self._page_tokens = page_tokens
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
        player_id, cap = row.player_id, await self._session_cap(operator_id)

        def _start(uow: UnitOfWork) -> Session:
            now = utcnow()
            # The player's row lock serializes their logins, so two at once cannot both slip under the cap.
            uow.conn.execute(select(players.c.player_id).where(players.c.player_id == player_id).with_for_update())
            live = uow.conn.execute(select(sessions.c.session_id).where(
                self._live(operator_id, player_id, now)).order_by(sessions.c.created_at, sessions.c.session_id)
            ).scalars().all()
            for oldest in live[:max(0, len(live) - cap + 1)]:
                self._end(uow, oldest, SESSION_CAP, now)
            session_id = str(uuid.uuid4())
            uow.conn.execute(sessions.insert().values(
                session_id=session_id, operator_id=operator_id, player_id=player_id, created_at=now,
                last_used_at=now, expires_at=now + self._settings.max_age))
            issued = self._issue(uow, operator_id, player_id, session_id, now, now + self._settings.max_age)
            uow.commit()
            return issued

        return await self._db.run(_start)

    async def authenticate(self, operator_id: str, token: str) -> Authenticated:
        """The player behind a live session token of this operator (the use keeps the login from idling).
        Unknown, malformed or another operator's: INVALID_SESSION; otherwise the reason it stopped working."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN:
            raise DomainError(Reason.INVALID_SESSION, "malformed session token")

        def _use(uow: UnitOfWork) -> Authenticated:
            now = utcnow()
            found = self._lookup(uow, operator_id, token, SESSION)
            if found.rotated_at is not None:
                raise DomainError(Reason.SESSION_REVOKED, "this session token was replaced by RefreshSession")
            if found.token_expires_at <= now:
                raise DomainError(Reason.SESSION_EXPIRED, "the session token has expired; refresh the session")
            self._check_live(uow, operator_id, found, now)
            uow.commit()
            return Authenticated(found.player_id, found.session_id, found.created_at)

        return await self._db.run(_use)

    async def refresh(self, operator_id: str, refresh_token: str) -> Session:
        if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > MAX_TOKEN:
            raise DomainError(Reason.INVALID_SESSION, "malformed refresh token")

        def _rotate(uow: UnitOfWork) -> Session:
            now = utcnow()
            found = self._lookup(uow, operator_id, refresh_token, REFRESH)
            # Claimed atomically: of two concurrent exchanges of one token, the second is a reuse.
            claimed = found.rotated_at is None and uow.conn.execute(update(tokens).where(
                tokens.c.token_hash == token_hash(refresh_token), tokens.c.rotated_at.is_(None)
            ).values(rotated_at=now)).rowcount == 1
            if not claimed:
                if found.ended_at is None:
                    self._end(uow, found.session_id, REUSED, now)
                uow.commit()
                raise DomainError(Reason.REFRESH_TOKEN_REUSED, "this refresh token was already used; the session "
                                  "and every token descended from it are revoked")
            self._check_live(uow, operator_id, found, now)
            uow.conn.execute(update(tokens).where(
                tokens.c.session_id == found.session_id, tokens.c.kind == SESSION, tokens.c.rotated_at.is_(None)
            ).values(rotated_at=now))
            issued = self._issue(uow, operator_id, found.player_id, found.session_id, now, found.expires_at)
            uow.commit()
            return issued

        return await self._db.run(_rotate)

    async def logout(self, operator_id: str, token: str) -> None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN:
            raise DomainError(Reason.INVALID_SESSION, "malformed session token")

        def _end(uow: UnitOfWork) -> None:
            found = self._lookup(uow, operator_id, token, SESSION)
            if found.ended_at is None:
                self._end(uow, found.session_id, LOGOUT, utcnow())
            uow.commit()

        await self._db.run(_end)

    async def sessions(self, operator_id: str, player_id: str, page_size: int, page_token: str) -> SessionPage:
        """The player's live logins, newest first; keyset-paginated."""
        if not 0 <= page_size <= 100:
            raise DomainError(Reason.INVALID_ARGUMENT, "page_size must be 0..100")
        limit = page_size or 20
        shape = ("ListSessions", operator_id, player_id)
        after = self._page_tokens.read(page_token, shape) if page_token else None

        def _read(uow: UnitOfWork) -> list[Any]:
            require_player(uow, operator_id, player_id)
            query = select(sessions).where(self._live(operator_id, player_id, utcnow()))
            if after is not None:
                created, session_id = datetime.fromisoformat(after[0]), after[1]
                query = query.where(or_(sessions.c.created_at < created,
                                        and_(sessions.c.created_at == created, sessions.c.session_id < session_id)))
            return list(uow.conn.execute(query.order_by(sessions.c.created_at.desc(), sessions.c.session_id.desc())
                                         .limit(limit + 1)))

        rows = await self._db.run(_read)
        idle = self._settings.idle
        page = tuple(LiveSession(r.session_id, r.created_at, r.last_used_at, r.expires_at,
                                 min(r.last_used_at + idle, r.expires_at)) for r in rows[:limit])
        last = rows[limit - 1] if len(rows) > limit else None
        return SessionPage(page, self._page_tokens.issue(shape, [last.created_at.isoformat(), last.session_id])
                           if last is not None else "")

    def check_login(self, book: Book, operator_id: str, player_id: str, session_id: str, now: datetime) -> None:
        """For a bet on a Play stream (in the engine, the session's row locked): the login the stream was
        opened with must not have ended (Logout, the cap, a refresh-token reuse, the time limit), idled, nor
        be past the player's session time limit. A bet is a use: it keeps the login from idling."""
        row = book.get(sessions, (session_id,))
        if row is None or row["operator_id"] != operator_id:
            raise DomainError(Reason.INVALID_SESSION, "the stream's session is unknown")
        if row["ended_at"] is not None:
            raise DomainError(_ENDED.get(row["end_reason"], Reason.SESSION_REVOKED),
                              f"the session has ended ({row['end_reason']})")
        if row["expires_at"] <= now or row["last_used_at"] + self._settings.idle <= now:
            raise DomainError(Reason.SESSION_EXPIRED, "the session has expired or idled; log in again")
        limit = limits.session_time_limit(book, operator_id, player_id, now)
        if limit and row["created_at"] + timedelta(seconds=limit) <= now:
            raise DomainError(Reason.SESSION_TIME_LIMIT_REACHED,
                              f"the session reached the player's session time limit of {limit // 60} minutes")
        if now - row["last_used_at"] >= USE_GRANULARITY:  # not a write per bet: a minute is fine enough
            book.update(sessions, row, last_used_at=now)

    # -- helpers (in the caller's unit of work) ------------------------------------------------------

    def _live(self, operator_id: str, player_id: str, now: datetime) -> Any:
        s = sessions.c
        return and_(s.operator_id == operator_id, s.player_id == player_id, s.ended_at.is_(None),
                    s.expires_at > now, s.last_used_at > now - self._settings.idle)

    @staticmethod
    def _lookup(uow: UnitOfWork, operator_id: str, token: str, kind: str) -> Any:
        t, s = tokens.c, sessions.c
        found = uow.conn.execute(
            select(t.session_id, t.rotated_at, t.expires_at.label("token_expires_at"), s.player_id, s.created_at,
                   s.last_used_at, s.expires_at, s.ended_at, s.end_reason)
            .join_from(tokens, sessions, t.session_id == s.session_id)
            .where(t.token_hash == token_hash(token), t.operator_id == operator_id, t.kind == kind,
                   s.operator_id == operator_id)).one_or_none()
        if found is None:
            raise DomainError(Reason.INVALID_SESSION, f"unknown or foreign {kind} token")
        return found

    def _check_live(self, uow: UnitOfWork, operator_id: str, found: Any, now: datetime) -> None:
        """Refuse a login that has ended (saying why), or end it now if it idled or reached the player's
        session time limit; else mark it used."""
        if found.ended_at is not None:
            raise DomainError(_ENDED.get(found.end_reason, Reason.SESSION_REVOKED),
                              f"the session has ended ({found.end_reason})")
        if found.expires_at <= now:
            raise DomainError(Reason.SESSION_EXPIRED, "the session has expired; log in again")
        if found.last_used_at + self._settings.idle <= now:
            self._end(uow, found.session_id, IDLE, now)
            uow.commit()
            raise DomainError(Reason.SESSION_EXPIRED, "the session ended after being idle; log in again")
        limit = _session_time_limit(uow, operator_id, found.player_id, now)
        if limit and found.created_at + timedelta(seconds=limit) <= now:
            self._end(uow, found.session_id, TIME_LIMIT, now)
            uow.commit()
            raise DomainError(Reason.SESSION_TIME_LIMIT_REACHED,
                              f"the session reached the player's session time limit of {limit // 60} minutes")
        uow.conn.execute(update(sessions).where(sessions.c.session_id == found.session_id).values(last_used_at=now))

    @staticmethod
    def _end(uow: UnitOfWork, session_id: str, why: str, now: datetime) -> None:
        uow.conn.execute(update(sessions).where(sessions.c.session_id == session_id, sessions.c.ended_at.is_(None))
                         .values(ended_at=now, end_reason=why))

    def _issue(self, uow: UnitOfWork, operator_id: str, player_id: str, session_id: str, now: datetime,
               session_end: datetime) -> Session:
        token, refresh = _new_token(TOKEN_PREFIX), _new_token(REFRESH_PREFIX)
        expires_at = min(now + self._settings.token_ttl, session_end)
        uow.conn.execute(tokens.insert(), [
            {"token_hash": token_hash(token), "operator_id": operator_id, "session_id": session_id, "kind": SESSION,
             "created_at": now, "expires_at": expires_at},
            {"token_hash": token_hash(refresh), "operator_id": operator_id, "session_id": session_id,
             "kind": REFRESH, "created_at": now, "expires_at": session_end}])
        return Session(player_id, token, expires_at, session_id, refresh, session_end)


def _session_time_limit(uow: UnitOfWork, operator_id: str, player_id: str, now: datetime) -> int:
    row = uow.conn.execute(select(player_limits).where(
        player_limits.c.operator_id == operator_id, player_limits.c.player_id == player_id,
        player_limits.c.kind == limits.SESSION_TIME)).first()
    return limits.effective(row._mapping, now) if row is not None else 0


def require_player(uow: UnitOfWork, operator_id: str, player_id: str) -> str:
    """The player's status (active | blocked); PLAYER_NOT_FOUND if the operator has no such player."""
    status = uow.conn.execute(select(players.c.status).where(
        players.c.operator_id == operator_id, players.c.player_id == player_id)).scalar_one_or_none()
    if status is None:
        raise DomainError(Reason.PLAYER_NOT_FOUND, f"no player {quote(player_id)}")
    return status
