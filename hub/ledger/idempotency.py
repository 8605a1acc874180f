"""Idempotency records, written in the same database transaction as the effect they guard.

same key + same request    -> the stored response again, no second effect
same key + other request   -> ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED
same key, first in flight  -> ABORTED / REQUEST_IN_PROGRESS (retryable)
Refusals that applied nothing (insufficient funds, bad input) are not recorded: the key stays free.
"""

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import select, update

from hub.clock import utcnow
from hub.errors import DomainError, Reason, State, quote
from hub.ledger.db import Database
from hub.ledger.schema import idempotency_keys
from hub.ledger.uow import UnitOfWork

MAX_KEY_LENGTH = 128
M = TypeVar("M", bound=Message)


def validate_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise DomainError(Reason.INVALID_IDEMPOTENCY_KEY,
                          f"idempotency_key must be 1..{MAX_KEY_LENGTH} characters, got {len(key)}")
    return key


def fingerprint(*parts: object) -> str:
    """A digest of everything that makes two requests the same request."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def lookup(uow: UnitOfWork, operator_id: str, key: str, request_fingerprint: str) -> bytes | None:
    """The stored response for a replay, or None if the key is new."""
    row = uow.conn.execute(
        select(idempotency_keys.c.fingerprint, idempotency_keys.c.response).where(
            idempotency_keys.c.operator_id == operator_id, idempotency_keys.c.idempotency_key == key)
    ).one_or_none()
    if row is None:
        return None
    if row.fingerprint != request_fingerprint:
        raise DomainError(Reason.IDEMPOTENCY_KEY_REUSED,
                          f"idempotency_key {quote(key)} was already used with a different request")
    if row.response is None:
        # Whether the first request will apply is not known yet: retry with the same key to find out.
        raise DomainError(Reason.REQUEST_IN_PROGRESS, f"a request with idempotency_key {quote(key)} is in progress",
                          State.UNKNOWN)
    response: bytes = row.response
    return response


def claim(uow: UnitOfWork, operator_id: str, key: str, request_fingerprint: str, now: datetime) -> None:
    """Insert the record first: a concurrent duplicate blocks on (or fails at) this unique row before it
    touches any account, and is rerun to see the winner's record."""
    uow.conn.execute(idempotency_keys.insert().values(
        operator_id=operator_id, idempotency_key=key, fingerprint=request_fingerprint,
        response=None, created_at=now))


def once(uow: UnitOfWork, operator_id: str, key: str, request_fingerprint: str,
         apply: Callable[[datetime], bytes]) -> bytes:
    """The stored response of key, or apply(now) and store its response, in the caller's transaction
    (which the caller commits)."""
    stored = lookup(uow, operator_id, validate_key(key), request_fingerprint)
    if stored is not None:
        return stored
    now = utcnow()
    claim(uow, operator_id, key, request_fingerprint, now)
    response = apply(now)
    complete(uow, operator_id, key, response)
    return response


async def run_once(db: Database, operator_id: str, key: str, request_fingerprint: str,
                   apply: Callable[[UnitOfWork, datetime], M], response_type: type[M]) -> M:
    """A keyed request in one transaction of its own: the stored response, or apply(uow, now) and store
    its response with the effect."""
    validate_key(key)

    def _tx(uow: UnitOfWork) -> bytes:
        response = once(uow, operator_id, key, request_fingerprint,
                        lambda now: apply(uow, now).SerializeToString(deterministic=True))
        uow.commit()
        return response

    return response_type.FromString(await db.run(_tx))


def complete(uow: UnitOfWork, operator_id: str, key: str, response: bytes) -> None:
    uow.conn.execute(update(idempotency_keys).where(
        idempotency_keys.c.operator_id == operator_id, idempotency_keys.c.idempotency_key == key,
    ).values(response=response))
