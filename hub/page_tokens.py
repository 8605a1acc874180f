"""Opaque, tamper-evident page tokens: a listing's cursor, bound to the query that produced it and signed
with the hub's key (kept in the database, so every hub process reads the tokens the others issue).

A token from another listing, another operator or other filters, an edited one or random text is refused
with INVALID_ARGUMENT / INVALID_PAGE_TOKEN: a client cannot page through a result it did not ask for.
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger.db import Database
from hub.ledger.schema import hub_keys
from hub.ledger.uow import UnitOfWork

MAC_BYTES = 16


class PageTokens:
    def __init__(self, key: bytes):
        self._key = key

    def issue(self, query: Sequence[object], cursor: list[Any]) -> str:
        """query: everything that shapes the listing except the page size (operator, filters)."""
        body = json.dumps(cursor, separators=(",", ":")).encode()
        return _text(self._mac(query, body) + body)

    def read(self, token: str, query: Sequence[object]) -> list[Any]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, binascii.Error):
            raw = b""
        mac, body = raw[:MAC_BYTES], raw[MAC_BYTES:]
        # Re-encoding catches edits base64 would ignore (the unused bits of the last character).
        if len(mac) < MAC_BYTES or _text(raw) != token or not hmac.compare_digest(mac, self._mac(query, body)):
            raise DomainError(Reason.INVALID_PAGE_TOKEN, "page_token was not issued for this query; "
                                                         "start again without one")
        cursor = json.loads(body)
        if not isinstance(cursor, list):  # only the hub signs, so this is a hub bug
            raise TypeError("page token cursor is not a list")
        return cursor

    def _mac(self, query: Sequence[object], body: bytes) -> bytes:
        shape = json.dumps([str(part) for part in query], separators=(",", ":")).encode()
        return hmac.new(self._key, shape + b"\0" + body, hashlib.sha256).digest()[:MAC_BYTES]


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def load(db: Database, name: str = "page_tokens") -> PageTokens:
    """The hub's page-token key: created by the first process to start, read by every other."""
    return PageTokens(await shared_secret(db, name))


async def shared_secret(db: Database, name: str) -> bytes:
    """A 32-byte hub key (hub_keys): created by the first process to start, read by every other."""

    def _tx(uow: UnitOfWork) -> str:
        stored = uow.conn.execute(select(hub_keys.c.secret).where(hub_keys.c.name == name)).scalar_one_or_none()
        if stored is None:  # a racing process's insert makes ours fail; Database.run retries and reads it
            stored = secrets.token_hex(32)
            uow.conn.execute(hub_keys.insert().values(name=name, secret=stored, created_at=utcnow()))
            uow.commit()
        return stored

    return bytes.fromhex(await db.run(_tx))
