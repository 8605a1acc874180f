"""Instanthouse: its games' payouts and theoretical RTP, the exact decimal-string amounts of its protocol, and
the adapter's wallet API (signature, freshness, replay, conversion, status mapping) against a fake port."""

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from fractions import Fraction

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.base import AmountNotRepresentable, UnknownCurrency, WalletAnswer, WalletCall, WalletRefused
from adapters.instanthouse.wallet_api import WINDOW_S, WalletApi
from adapters.money import from_decimal_string, to_decimal_string
from mock_providers.instanthouse import games
from mock_providers.instanthouse.server import sign

SECRET = "unit-secret"


# -- games --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", games.CRASH_TARGETS)
def test_crash_returns_exactly_97_percent_at_every_target(target: int) -> None:
    assert games.theoretical_rtp("crash", target) == Fraction(97, 100)


def test_scratch_returns_exactly_96_percent_and_the_catalog_says_so() -> None:
    assert games.theoretical_rtp("scratch") == Fraction(96, 100)
    stated = {g["gameId"]: g["rtpBasisPoints"] for g in games.GAMES}
    assert stated == {"crash": 9700, "scratch": 9600}


def test_crash_pays_the_target_below_its_threshold_and_nothing_above() -> None:
    # 2910 / 5 = 582 cells of 3000 reach 5x.
    assert games.crash(581, 5).multiplier == 5
    assert games.crash(582, 5).multiplier == 0
    assert games.crash(3000 + 581, 5).multiplier == 5
    with pytest.raises(ValueError):
        games.crash(0, 4)


def test_scratch_cells_follow_the_paytable() -> None:
    assert [games.scratch(cell).multiplier for cell in (0, 1, 10, 11, 50, 51, 200, 201, 460, 461, 999)] == [
        100, 10, 10, 5, 5, 2, 2, 1, 1, 0, 0]


def test_a_round_is_deterministic_from_its_seeds_and_nonce() -> None:
    first = games.draw("server", "client", 1)
    assert first == games.draw("server", "client", 1) != games.draw("server", "client", 2)
    expected = int(hmac.new(b"server", b"client:1", hashlib.sha256).hexdigest(), 16)
    assert first == expected


# -- decimal strings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("currency,text,minor", [
    ("USD", "12.50", 1250), ("USD", "12.5", 1250), ("USD", "12.500", 1250), ("USD", "0", 0), ("JPY", "500", 500),
    ("JPY", "500.000", 500), ("BTC", "0.00000001", 1), ("KWD", "1.005", 1005)])
def test_decimal_strings_convert_exactly(currency: str, text: str, minor: int) -> None:
    assert from_decimal_string(currency, text) == minor


@pytest.mark.parametrize("currency,minor,text", [("USD", 1250, "12.50"), ("USD", 5, "0.05"), ("JPY", 7, "7"),
                                                 ("BTC", 1, "0.00000001"), ("USD", 0, "0.00")])
def test_minor_units_print_as_the_studios_decimal_strings(currency: str, minor: int, text: str) -> None:
    assert to_decimal_string(currency, minor) == text
    assert from_decimal_string(currency, text) == minor


@pytest.mark.parametrize("currency,text", [
    ("USD", "12.505"), ("USD", "0.001"), ("JPY", "1.5"), ("USD", "-1.00"), ("USD", "1e2"), ("USD", " 1.00"),
    ("USD", "01.00"), ("USD", "1."), ("USD", ".5"), ("USD", ""), ("USD", "1,00"), ("USD", "١٢")])
def test_a_decimal_string_that_is_not_exact_or_not_plain_is_refused(currency: str, text: str) -> None:
    with pytest.raises(AmountNotRepresentable):
        from_decimal_string(currency, text)


def test_a_decimal_string_in_an_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        from_decimal_string("XXX", "1.00")


# -- the wallet API against a fake port --------------------------------------------------------------------------


class FakeWallet:
    """Records the port calls; refuses when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, WalletCall]] = []
        self.refuse: WalletRefused | None = None
        self.wallet = WalletAnswer("USD", 10_000, 50, "p-1")

    async def _answer(self, name: str, call: WalletCall) -> WalletAnswer:
        self.calls.append((name, call))
        if self.refuse is not None and name != "balance":
            raise self.refuse
        return replace(self.wallet, transaction_id="tx-1" if name != "balance" else "")

    async def authenticate(self, call: WalletCall) -> WalletAnswer:
        return await self._answer("authenticate", call)

    async def balance(self, call: WalletCall) -> WalletAnswer:
        return await self._answer("balance", call)

    async def bet(self, call: WalletCall) -> WalletAnswer:
        return await self._answer("bet", call)

    async def win(self, call: WalletCall) -> WalletAnswer:
        return await self._answer("win", call)

    async def bet_and_win(self, call: WalletCall) -> WalletAnswer:
        return await self._answer("bet_and_win", call)

    async def rollback(self, call: WalletCall) -> WalletAnswer:
        return await self._answer("rollback", call)


class Caller:
    def __init__(self, client: TestClient, wallet: FakeWallet):  # type: ignore[type-arg]
        self.client, self.wallet = client, wallet
        self.nonce = 0

    async def post(self, method: str, payload: dict[str, object], secret: str = SECRET,
                   timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
        self.nonce += 1
        body = json.dumps(payload).encode()
        stamp, nonce = str(int(time.time()) if timestamp is None else timestamp), nonce or f"n-{self.nonce}"
        response = await self.client.post(f"/{method}", data=body, headers={
            "X-Instant-Timestamp": stamp, "X-Instant-Nonce": nonce,
            "X-Instant-Signature": sign(secret, stamp, nonce, method, body)})
        assert response.status == 200
        return await response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def caller() -> AsyncIterator[Caller]:
    wallet = FakeWallet()
    client = TestClient(TestServer(WalletApi(SECRET, wallet).app()))
    await client.start_server()
    yield Caller(client, wallet)
    await client.close()


DEBIT = {"token": "gs-1", "userId": "p-1", "transactionId": "t-1", "roundId": "r-1", "amount": "1.50",
         "currency": "USD", "roundClosed": False}


async def test_each_method_becomes_its_port_call_with_exact_minor_units(caller: Caller) -> None:
    assert (await caller.post("debit", DEBIT)) == {"status": "OK", "currency": "USD", "balance": "100.50",
                                                   "bonusBalance": "0.50", "userId": "p-1", "transactionId": "tx-1"}
    await caller.post("credit", {**DEBIT, "transactionId": "t-2", "amount": "3.000", "debitTransactionId": "t-1",
                                 "roundClosed": True})
    await caller.post("debitAndCredit", {**DEBIT, "transactionId": "t-3", "debitAmount": "2", "creditAmount": "0.00"})
    await caller.post("rollback", {"token": "gs-1", "userId": "p-1", "transactionId": "t-4",
                                   "rollbackTransactionId": "t-1"})
    await caller.post("authenticate", {"token": "gs-1"})
    assert caller.wallet.calls == [
        ("bet", WalletCall("gs-1", "p-1", "USD", "t-1", "r-1", 150)),
        ("win", WalletCall("gs-1", "p-1", "USD", "t-2", "r-1", 300, bet_transaction_id="t-1", round_closed=True)),
        ("bet_and_win", WalletCall("gs-1", "p-1", "USD", "t-3", "r-1", 200, 0)),
        ("rollback", WalletCall("gs-1", "p-1", transaction_id="t-4", bet_transaction_id="t-1")),
        ("authenticate", WalletCall("gs-1", "")),
    ]


async def test_an_amount_that_cannot_be_converted_is_refused_with_the_balance_and_moves_nothing(
        caller: Caller) -> None:
    answer = await caller.post("debit", {**DEBIT, "amount": "1.505"})
    assert answer["status"] == "INVALID_AMOUNT" and answer["balance"] == "100.50"
    assert [name for name, _ in caller.wallet.calls] == ["balance"]
    assert (await caller.post("debit", {**DEBIT, "currency": "XXX"}))["status"] == "INVALID_CURRENCY"
    assert (await caller.post("debit", {**DEBIT, "amount": 1.5}))["status"] == "INVALID_REQUEST"


async def test_a_wrong_signature_a_stale_timestamp_and_a_replayed_nonce_are_refused_before_the_port(
        caller: Caller) -> None:
    assert await caller.post("debit", DEBIT, secret="not-the-secret") == {"status": "INVALID_SIGNATURE"}
    assert await caller.post("debit", DEBIT, timestamp=int(time.time()) - WINDOW_S - 5) == {"status": "STALE_REQUEST"}
    assert (await caller.post("debit", DEBIT, nonce="once"))["status"] == "OK"
    assert await caller.post("debit", DEBIT, nonce="once") == {"status": "REPLAYED_REQUEST"}
    # The signature covers the method: a debit's signature does not make a credit.
    body = json.dumps(DEBIT).encode()
    stamp = str(int(time.time()))
    response = await caller.client.post("/credit", data=body, headers={
        "X-Instant-Timestamp": stamp, "X-Instant-Nonce": "x", "X-Instant-Signature": sign(SECRET, stamp, "x", "debit",
                                                                                           body)})
    assert await response.json() == {"status": "INVALID_SIGNATURE"}
    assert len(caller.wallet.calls) == 1


@pytest.mark.parametrize("reason,retryable,status", [
    ("INSUFFICIENT_FUNDS", False, "INSUFFICIENT_FUNDS"), ("BET_NOT_FOUND", False, "TRANSACTION_NOT_FOUND"),
    ("GAME_SESSION_CLOSED", False, "SESSION_EXPIRED"), ("IDEMPOTENCY_KEY_REUSED", False, "DUPLICATE_TRANSACTION"),
    ("ROUND_ALREADY_SETTLED", False, "ROUND_SETTLED"), ("REQUEST_IN_PROGRESS", True, "RETRY"),
    ("SELF_EXCLUDED", False, "BET_REFUSED")])
async def test_hub_refusals_become_the_studios_statuses_with_the_balance(
        caller: Caller, reason: str, retryable: bool, status: str) -> None:
    caller.wallet.refuse = WalletRefused(reason, "no", retryable, WalletAnswer("USD", 7))
    assert await caller.post("debit", DEBIT) == {"status": status, "currency": "USD", "balance": "0.07",
                                                 "bonusBalance": "0.00"}


async def test_malformed_requests_are_the_studios_invalid_request(caller: Caller) -> None:
    for payload in ({**DEBIT, "transactionId": ""}, {**DEBIT, "roundClosed": "yes"}, {**DEBIT, "userId": 5},
                    {**DEBIT, "transactionId": "t" * 65}, {k: v for k, v in DEBIT.items() if k != "roundId"}):
        assert (await caller.post("debit", payload))["status"] == "INVALID_REQUEST"
    assert (await caller.post("transfer", DEBIT))["status"] == "INVALID_REQUEST"
    assert [name for name, _ in caller.wallet.calls] == ["balance"] * 4  # the refusals answer the balance


async def test_hostile_bodies_and_headers_are_refused_not_failed(caller: Caller) -> None:
    deep = b"[" * 8_000 + b"]" * 8_000  # within MAX_BODY, far deeper than the JSON parser recurses
    stamp = str(int(time.time()))
    for body, signature in ((deep, sign(SECRET, stamp, "deep", "debit", deep)), (b"\xff\xfe", "0" * 64),
                            (b"{}", "\u00e9" * 64)):
        response = await caller.client.post("/debit", data=body, headers={
            "X-Instant-Timestamp": stamp, "X-Instant-Nonce": f"h-{len(body)}-{signature[:4]}",
            "X-Instant-Signature": signature})
        assert response.status == 200
        assert (await response.json())["status"] in ("INVALID_REQUEST", "INVALID_SIGNATURE")
    assert caller.wallet.calls == []
