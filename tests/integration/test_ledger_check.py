"""`hub ledger check` on a ledger a live hub wrote (SQLite and MariaDB): clean, then tampered with in SQL."""

import asyncio
import json
import sys
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Row, create_engine, select, text

from casinohub.v1 import common_pb2, wallet_service_pb2 as wallet_pb
from hub.ledger.check import Report, check
from hub.ledger.schema import accounts, postings
from tests.e2e.play_client import opened_stream
from tests.fakes import FakeStudio
from tests.support import Client

# what tampering with an amount or deleting an entry breaks
SUMS_BROKEN = {"transaction_unbalanced", "ledger_unbalanced", "balance_mismatch", "chain_broken"}


@pytest.fixture
async def player(hub: Client, studio: FakeStudio) -> str:
    """A player with a deposit, a withdrawal and three settled bets: 100 (wins 200), 100 (wins 200), 50."""
    studio.win = lambda bet: 2 * bet if bet == 100 else 0
    player_id, token = await hub.new_player(deposit=1_000)
    await hub.wallet.Withdraw(wallet_pb.WithdrawRequest(
        player_id=player_id, idempotency_key="w-1", amount=common_pb2.Money(currency="USD", amount_minor=200)
    ), metadata=hub.metadata)
    stream = await opened_stream(hub, token)
    for i, amount in enumerate([100, 100, 50]):
        stream.bet(amount, f"bet-{i}")
        assert (await stream.until("settled", "error"))[-1].WhichOneof("event") == "settled"
    await stream.close()
    await hub.new_player(deposit=300)  # a second player: more accounts in the same ledger
    return player_id


def report(hub: Client) -> Report:
    [only] = check(hub.database_url, hub.operator_id)
    return only


def sql(hub: Client, statement: str, **params: object) -> None:
    engine = create_engine(hub.database_url)
    with engine.begin() as conn:
        conn.execute(text(statement), params)
    engine.dispose()


def player_entries(hub: Client, player_id: str) -> list[Row[Any]]:
    """The player's cash entries in chain order: deposit, withdrawal, bet, win, bet, win, bet."""
    engine = create_engine(hub.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(postings).join(accounts, accounts.c.account_id == postings.c.account_id)
            .where(accounts.c.operator_id == hub.operator_id, accounts.c.owner == player_id,
                   accounts.c.kind == "player_cash")
            .order_by(postings.c.posting_id)).all()
    engine.dispose()
    assert [r.amount for r in rows] == [1_000, -200, -100, 200, -100, 200, -50]
    return rows


async def test_a_ledger_written_by_the_hub_is_clean(hub: Client, player: str) -> None:
    clean = report(hub)
    assert clean.ok and clean.violations == []
    # two players' cash and (empty) bonus balances, the first player's withdrawal hold, the external
    # account and one house shard
    assert dict(clean.checked) == {"transactions": 8, "postings": 16, "accounts": 7, "entries": 16}
    everyone = check(hub.database_url)  # without an operator: every operator in the database
    assert [r for r in everyone if r.operator_id == hub.operator_id][0].ok


async def test_concurrent_bets_on_shared_house_shards_keep_every_chain_intact(
        hub: Client, studio: FakeStudio) -> None:
    studio.win = lambda bet: bet if bet % 2 else 0
    # 9 players on 8 house shards: at least two share one, so their bets race for its chain
    tokens = [(await hub.new_player(deposit=1_000))[1] for _ in range(9)]
    streams = [await opened_stream(hub, token) for token in tokens for _ in range(2)]
    for i, stream in enumerate(streams):
        stream.bet(10 + i, f"race-{i}")
    await asyncio.gather(*(stream.until("settled") for stream in streams))
    for stream in streams:
        await stream.close()
    found = report(hub)
    assert found.ok and found.checked["transactions"] == 9 + 18 + 9  # deposits, bets, wins of the odd bets


async def test_changed_posting_amount(hub: Client, player: str) -> None:
    deposit = player_entries(hub, player)[0]
    sql(hub, "UPDATE postings SET amount = amount + 1 WHERE posting_id = :id", id=deposit.posting_id)
    found = report(hub)
    assert set(found.counts) == SUMS_BROKEN
    assert {(v.kind, v.subject) for v in found.violations} >= {
        ("transaction_unbalanced", f"transaction {deposit.transaction_id}"),
        ("chain_broken", f"posting {deposit.posting_id}")}


async def test_changed_account_balance(hub: Client, player: str) -> None:
    account_id = player_entries(hub, player)[0].account_id
    sql(hub, "UPDATE accounts SET balance = balance + 500 WHERE account_id = :id", id=account_id)
    found = report(hub)
    assert [(v.kind, v.subject) for v in found.violations] == [("balance_mismatch", f"account {account_id}")]


async def test_deleted_posting(hub: Client, player: str) -> None:
    withdrawal, after = player_entries(hub, player)[1:3]
    sql(hub, "DELETE FROM postings WHERE posting_id = :id", id=withdrawal.posting_id)
    found = report(hub)
    assert set(found.counts) == SUMS_BROKEN
    assert ("chain_broken", f"posting {after.posting_id}") in {(v.kind, v.subject) for v in found.violations}


async def test_negative_player_balance(hub: Client, player: str) -> None:
    account_id = player_entries(hub, player)[0].account_id
    sql(hub, "UPDATE accounts SET balance = -5 WHERE account_id = :id", id=account_id)
    found = report(hub)
    assert set(found.counts) == {"negative_balance", "balance_mismatch"}
    assert ("negative_balance", f"account {account_id}") in {(v.kind, v.subject) for v in found.violations}


async def test_bonus_money_left_behind_by_an_ended_bonus(hub: Client, player: str) -> None:
    granted = await hub.wallet.GrantBonus(wallet_pb.GrantBonusRequest(
        player_id=player, idempotency_key="bonus-1", amount=common_pb2.Money(currency="USD", amount_minor=300),
        wagering_requirement=common_pb2.Money(currency="USD", amount_minor=9_000),
        expires_at=Timestamp(seconds=4_102_444_800)), metadata=hub.metadata)
    assert report(hub).ok
    # Marking the bonus ended in SQL without moving its money out leaves an orphaned bonus balance.
    sql(hub, "UPDATE bonuses SET status = 'FORFEITED' WHERE bonus_id = :id", id=granted.bonus.bonus_id)
    found = report(hub)
    assert set(found.counts) == {"bonus_without_active_bonus"}
    assert found.violations[0].detail == "bonus balance 300 with no active bonus"


async def test_swapped_entries_keep_every_sum_but_break_the_chain(hub: Client, player: str) -> None:
    entries = player_entries(hub, player)
    first_bet, second_bet = entries[2], entries[4]  # both -100: swapping their transactions keeps all sums
    sql(hub, "UPDATE postings SET transaction_id = CASE posting_id WHEN :a THEN :tb ELSE :ta END "
             "WHERE posting_id IN (:a, :b)", a=first_bet.posting_id, b=second_bet.posting_id,
        ta=first_bet.transaction_id, tb=second_bet.transaction_id)
    found = report(hub)
    assert [(v.kind, v.subject) for v in found.violations] == [
        ("chain_broken", f"posting {first_bet.posting_id}"),
        ("chain_broken", f"posting {second_bet.posting_id}")]


async def test_changed_balance_after_and_chain_head(hub: Client, player: str) -> None:
    entries = player_entries(hub, player)
    sql(hub, "UPDATE postings SET balance_after = balance_after + 1 WHERE posting_id = :id",
        id=entries[3].posting_id)
    sql(hub, "UPDATE accounts SET last_entry_hash = :h WHERE account_id = :id",
        h="f" * 64, id=entries[0].account_id)
    found = report(hub)
    assert set(found.counts) == {"chain_broken", "balance_mismatch"}
    assert {(v.kind, v.subject) for v in found.violations if v.kind == "chain_broken"} == {
        ("chain_broken", f"posting {entries[3].posting_id}"),
        ("chain_broken", f"account {entries[0].account_id}")}


async def test_ledger_transaction_without_postings_and_postings_without_transaction(
        hub: Client, player: str) -> None:
    entries = player_entries(hub, player)
    sql(hub, "DELETE FROM ledger_transactions WHERE transaction_id = :t", t=entries[1].transaction_id)
    # the first bet's postings move to the deposit: both stay balanced, the bet is left with none
    sql(hub, "UPDATE postings SET transaction_id = :t WHERE transaction_id = :old",
        t=entries[0].transaction_id, old=entries[2].transaction_id)
    found = report(hub)
    kinds = {"postings_without_transaction", "transaction_without_postings", "chain_broken"}
    assert set(found.counts) == kinds
    assert {(v.kind, v.subject) for v in found.violations if v.kind != "chain_broken"} == {
        ("postings_without_transaction", f"transaction {entries[1].transaction_id}"),
        ("transaction_without_postings", f"transaction {entries[2].transaction_id}")}


async def test_cli_exit_codes(hub: Client, player: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "hub.toml").write_text(f'[hub]\ndatabase_url = "{hub.database_url}"\n')

    async def hub_ledger_check(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "--config", str(tmp_path / "hub.toml"), "ledger", "check",
            "--operator", hub.operator_id, *args, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode()

    code, out = await hub_ledger_check()
    assert code == 0 and f"operator {hub.operator_id}:" in out and "ledger check: clean" in out
    account_id = player_entries(hub, player)[0].account_id
    sql(hub, "UPDATE accounts SET balance = -1 WHERE account_id = :id", id=account_id)
    code, out = await hub_ledger_check()
    assert code == 1 and "negative_balance" in out and f"account {account_id}" in out
    code, out = await hub_ledger_check("--json")
    assert code == 1 and json.loads(out)["operators"][0]["violation_counts"] == {
        "negative_balance": 1, "balance_mismatch": 1}
