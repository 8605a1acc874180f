"""Instanthouse's wallet protocol, served inside the hub: each studio call checked, converted and translated
into one call on the hub's StudioWallet port.

Every call is POST <mount>/<method> (authenticate, balance, debit, credit, debitAndCredit, rollback) with a
JSON body and three headers: X-Instant-Timestamp (unix seconds, within WINDOW_S of the hub's clock),
X-Instant-Nonce (1..64 characters, refused if seen in the window) and X-Instant-Signature, the hex
HMAC-SHA256(secret, "<timestamp>\\n<nonce>\\n<method>\\n" + body). Amounts are decimal strings in major
units ("12.50"), converted to minor units exactly (adapters.money) or refused INVALID_AMOUNT, nothing moved.

The answer is always HTTP 200 with the studio's status in the body and, whenever the hub knows the player,
the balance (cash + bonus, what the player can bet) in the same decimal format:
    {"status": "OK", "balance": "12.50", "bonusBalance": "0.00", "currency": "USD", "transactionId": "..."}
Field limits: token 1..128 characters; userId, transactionId, roundId, debitTransactionId,
rollbackTransactionId 1..64; currency 1..8; amounts 1..40; body at most MAX_BODY bytes.
"""

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from adapters.base import (
    AmountNotRepresentable,
    StudioWallet,
    UnknownCurrency,
    WalletAnswer,
    WalletCall,
    WalletRefused,
)
from adapters.money import from_decimal_string, to_decimal_string

log = logging.getLogger(__name__)
TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER = "X-Instant-Timestamp", "X-Instant-Nonce", "X-Instant-Signature"
WINDOW_S = 300  # a request's timestamp may be this far from the hub's clock; its nonce is remembered twice as long
MAX_BODY = 16 * 1024
MAX_TOKEN, MAX_ID, MAX_CURRENCY, MAX_AMOUNT = 128, 64, 8, 40
METHODS = ("authenticate", "balance", "debit", "credit", "debitAndCredit", "rollback")
# The hub's reasons (adapters.base.WalletRefused.reason) as the studio's statuses. A reason not listed is
# RETRY when the hub marks it retryable, else BET_REFUSED (a blocked or self-excluded player, a limit, ...).
STATUS_OF_REASON = {
    "INSUFFICIENT_FUNDS": "INSUFFICIENT_FUNDS",
    "GAME_SESSION_NOT_FOUND": "INVALID_TOKEN",
    "GAME_SESSION_CLOSED": "SESSION_EXPIRED",
    "PLAYER_NOT_FOUND": "USER_NOT_FOUND",
    "BET_NOT_FOUND": "TRANSACTION_NOT_FOUND",
    "IDEMPOTENCY_KEY_REUSED": "DUPLICATE_TRANSACTION",
    "ROUND_CLOSED": "ROUND_CLOSED",
    "TRANSACTION_ROLLED_BACK": "TRANSACTION_ROLLED_BACK",
    "ROUND_ALREADY_SETTLED": "ROUND_SETTLED",
    "CURRENCY_MISMATCH": "INVALID_CURRENCY",
    "UNKNOWN_CURRENCY": "INVALID_CURRENCY",
    "INVALID_AMOUNT": "INVALID_AMOUNT",
    "AMOUNT_ABOVE_MAXIMUM": "INVALID_AMOUNT",
    "AMOUNT_NOT_REPRESENTABLE": "INVALID_AMOUNT",
    "INVALID_ARGUMENT": "INVALID_REQUEST",
    "FIELD_TOO_LONG": "INVALID_REQUEST",
}


class _Refuse(Exception):
    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def _text(data: dict[str, Any], name: str, limit: int, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise _Refuse("INVALID_REQUEST")
    return value


def _minor(data: dict[str, Any], name: str, currency: str) -> int:
    text = _text(data, name, MAX_AMOUNT)
    try:
        return from_decimal_string(currency, text)
    except UnknownCurrency:
        raise _Refuse("INVALID_CURRENCY") from None
    except AmountNotRepresentable:
        raise _Refuse("INVALID_AMOUNT") from None


def parse(method: str, data: dict[str, Any]) -> WalletCall:
    """The studio's request as the port's WalletCall; _Refuse with the studio's status if it is not one."""
    token = _text(data, "token", MAX_TOKEN)
    if method == "authenticate":
        return WalletCall(token, "")
    player = _text(data, "userId", MAX_ID)
    if method == "balance":
        return WalletCall(token, player)
    closed = data.get("roundClosed", False)
    if not isinstance(closed, bool):
        raise _Refuse("INVALID_REQUEST")
    tx = _text(data, "transactionId", MAX_ID)
    if method == "rollback":
        return WalletCall(token, player, transaction_id=tx, round_id=_text(data, "roundId", MAX_ID, required=False),
                          bet_transaction_id=_text(data, "rollbackTransactionId", MAX_ID), round_closed=closed)
    currency = _text(data, "currency", MAX_CURRENCY)
    round_id = _text(data, "roundId", MAX_ID)
    if method == "debitAndCredit":
        return WalletCall(token, player, currency, tx, round_id, _minor(data, "debitAmount", currency),
                          _minor(data, "creditAmount", currency), round_closed=closed)
    bet_tx = _text(data, "debitTransactionId", MAX_ID, required=False) if method == "credit" else ""
    return WalletCall(token, player, currency, tx, round_id, _minor(data, "amount", currency),
                      bet_transaction_id=bet_tx, round_closed=closed)


class WalletApi:
    def __init__(self, secret: str, wallet: StudioWallet, clock: Callable[[], float] = time.time):
        self._key = secret.encode()
        self._wallet = wallet
        self._clock = clock
        self._nonces: dict[str, float] = {}  # nonce -> when it was first seen
        self._swept_at = 0.0
        self._port = {"authenticate": wallet.authenticate, "balance": wallet.balance, "debit": wallet.bet,
                      "credit": wallet.win, "debitAndCredit": wallet.bet_and_win, "rollback": wallet.rollback}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{method}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method not in METHODS:
            return web.json_response({"status": "INVALID_REQUEST"})
        body = await request.read()
        status = self._verify(method, body, request.headers)
        if status:
            return web.json_response({"status": status})
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
            return web.json_response({"status": "INVALID_REQUEST"})
        try:
            call = parse(method, data)
        except _Refuse as refused:
            return web.json_response(await self._refusal(refused.status, data))
        try:
            return web.json_response(self._body("OK", await self._port[method](call)))
        except WalletRefused as refused:
            status = STATUS_OF_REASON.get(refused.reason, "RETRY" if refused.retryable else "BET_REFUSED")
            return web.json_response(self._body(status, refused.wallet))
        except Exception:  # the hub failed (its database, say): the studio must resend the same call
            log.warning("instanthouse wallet call %s failed", method, exc_info=True)
            return web.json_response({"status": "INTERNAL_ERROR"})

    def _verify(self, method: str, body: bytes, headers: Any) -> str:
        """"" when the request is the studio's, fresh and new; else the studio's status saying why not."""
        stamp, nonce = headers.get(TIMESTAMP_HEADER, ""), headers.get(NONCE_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 and 1 <= len(nonce) <= MAX_ID
                and nonce.isascii() and nonce.isprintable() and given.isascii()):
            return "INVALID_SIGNATURE"
        expected = hmac.new(self._key, f"{stamp}\n{nonce}\n{method}\n".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return "INVALID_SIGNATURE"
        now = self._clock()
        if abs(now - int(stamp)) > WINDOW_S:
            return "STALE_REQUEST"
        self._sweep(now)
        if nonce in self._nonces:
            return "REPLAYED_REQUEST"
        self._nonces[nonce] = now
        return ""

    def _sweep(self, now: float) -> None:
        """Forget nonces older than twice the window: their timestamps are refused as stale by now."""
        if now - self._swept_at < WINDOW_S / 10:
            return
        self._swept_at = now
        self._nonces = {n: seen for n, seen in self._nonces.items() if now - seen <= 2 * WINDOW_S}

    async def _refusal(self, status: str, data: dict[str, Any]) -> dict[str, str]:
        """A request refused before the hub heard of it, with the balance when its token and user say whose."""
        token, player = data.get("token"), data.get("userId")
        if not (isinstance(token, str) and isinstance(player, str) and token and player
                and len(token) <= MAX_TOKEN and len(player) <= MAX_ID):
            return {"status": status}
        try:
            wallet = await self._wallet.balance(WalletCall(token, player))
        except WalletRefused:
            return {"status": status}
        return self._body(status, wallet)

    @staticmethod
    def _body(status: str, wallet: WalletAnswer | None) -> dict[str, str]:
        if wallet is None:
            return {"status": status}
        body = {"status": status, "currency": wallet.currency,
                "balance": to_decimal_string(wallet.currency, wallet.balance_minor + wallet.bonus_minor),
                "bonusBalance": to_decimal_string(wallet.currency, wallet.bonus_minor)}
        if wallet.player_id:
            body["userId"] = wallet.player_id
        if wallet.transaction_id:
            body["transactionId"] = wallet.transaction_id
        return body
