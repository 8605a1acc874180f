"""Idempotency records, written in the same database transaction as the effect they guard.

same key + same request    -> the stored response again, no second effect
same key + other request   -> ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED
same key, first in flight  -> the second waits for the first's batch to commit (the record's unique
                              key), then its batch is decided again and finds the stored response
Refusals that applied nothing (insufficient funds, bad input) are not recorded: the key stays free.
"""

import hashlib
from collections.abc import Callable
from typing import TypeVar

from hub.clock import utcnow
from hub.errors import DomainError, Reason, State, quote
from hub.ledger.book import Book
from hub.ledger.schema import idempotency_keys

MAX_KEY_LENGTH = 128
T = TypeVar("T")


def validate_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise DomainError(Reason.INVALID_IDEMPOTENCY_KEY,
                          f"idempotency_key must be 1..{MAX_KEY_LENGTH} characters, got {len(key)}")
    return key


def fingerprint(*parts: object) -> str:
    """A digest of everything that makes two requests the same request."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def lookup(book: Book, operator_id: str, key: str, request_fingerprint: str) -> bytes | None:
    """The stored response for a replay, or None if the key is new."""
    row = book.get(idempotency_keys, (operator_id, key))
    if row is None:
        return None
    if row["fingerprint"] != request_fingerprint:
        raise DomainError(Reason.IDEMPOTENCY_KEY_REUSED,
                          f"idempotency_key {quote(key)} was already used with a different request")
    if row["response"] is None:  # written by an older hub that claimed keys before deciding
        raise DomainError(Reason.REQUEST_IN_PROGRESS, f"a request with idempotency_key {quote(key)} is in progress",
                          State.UNKNOWN)
    response: bytes = row["response"]
    return response


def record(book: Book, operator_id: str, key: str, request_fingerprint: str, response: bytes) -> None:
    book.insert(idempotency_keys, {"operator_id": operator_id, "idempotency_key": key,
                                   "fingerprint": request_fingerprint, "response": response,
                                   "created_at": utcnow()})


def once(book: Book, operator_id: str, key: str, request_fingerprint: str, apply: Callable[[], T],
         encode: Callable[[T], bytes], decode: Callable[[bytes], T]) -> T:
    """The response stored under key, or apply() and store its response, in the batch's transaction.
    The caller's encode/decode say how its responses are stored (hub.records)."""
    stored = lookup(book, operator_id, validate_key(key), request_fingerprint)
    if stored is not None:
        return decode(stored)
    response = apply()
    record(book, operator_id, key, request_fingerprint, encode(response))
    return response
