"""Migrations that change how existing data is stored, run on databases holding data."""

from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from hub.ledger.schema import COLLATION, ledger_transactions, metadata
from hub.migrate import alembic_config, upgrade
from tests.support import throwaway_mariadb_database

mariadb_only = pytest.mark.mariadb


def collations(url: str) -> dict[str, str]:
    """The collation of every text column ("table.column") and every table's default ("table"), and
    the database's default ("")."""
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {f"{t}.{c}": collation for t, c, collation in conn.execute(text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND character_set_name IS NOT NULL"))}
        found |= {t: collation for t, collation in conn.execute(text(
            "SELECT table_name, table_collation FROM information_schema.tables WHERE table_schema = DATABASE()"))}
        found[""] = conn.execute(text(
            "SELECT default_collation_name FROM information_schema.schemata WHERE schema_name = DATABASE()")
        ).scalar_one()
    engine.dispose()
    return found


def assert_byte_for_byte(url: str, tables: set[str]) -> None:
    found = collations(url)
    assert tables <= found.keys()
    assert {name: c for name, c in found.items() if c != COLLATION} == {}


@pytest.fixture(params=[pytest.param(None, id="server-default", marks=mariadb_only),
                        pytest.param("latin1", id="latin1", marks=mariadb_only)])
def fresh_mariadb_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database created with the server's defaults, or with latin1 (MariaDB's own default
    before 11.6, so common on older production servers)."""
    yield from throwaway_mariadb_database(request.param)


@mariadb_only
def test_every_text_column_of_a_migrated_database_compares_byte_for_byte(mariadb_url: str) -> None:
    assert_byte_for_byte(mariadb_url, {*metadata.tables, "alembic_version"})


def test_tables_created_from_the_schema_compare_byte_for_byte(fresh_mariadb_url: str) -> None:
    engine = create_engine(fresh_mariadb_url)
    metadata.create_all(engine)
    engine.dispose()
    found = collations(fresh_mariadb_url)
    del found[""]  # the database's default is the migrations' business
    assert set(metadata.tables) <= found.keys()
    assert {name: c for name, c in found.items() if c != COLLATION} == {}


def test_upgrade_converts_existing_tables_and_keeps_their_rows(fresh_mariadb_url: str) -> None:
    url = fresh_mariadb_url
    command.upgrade(alembic_config(url), "0006")
    assert collations(url)["players.username"] != COLLATION
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO operators VALUES ('Acme', 'Acmé Casino', '2026-01-01')"))
        conn.execute(text("INSERT INTO players VALUES ('p-1', 'Acme', 'Zoë', 'hash', 'active', '2026-01-01')"))
        conn.execute(text("INSERT INTO idempotency_keys VALUES ('Acme', 'CaseKey', 'fp', NULL, '2026-01-01')"))
        with pytest.raises(IntegrityError):  # the defect: another key, taken for the same one
            with conn.begin_nested():
                conn.execute(text("INSERT INTO idempotency_keys VALUES ('Acme', 'casekey ', 'fp', NULL, '2026-01-01')"))
    engine.dispose()

    upgrade(url)

    assert_byte_for_byte(url, {*metadata.tables, "alembic_version"})
    engine = create_engine(url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT operator_id, name FROM operators")).all() == [("Acme", "Acmé Casino")]
        assert conn.execute(text("SELECT username FROM players WHERE username = 'Zoë'")).all() == [("Zoë",)]
        assert conn.execute(text("SELECT username FROM players WHERE username IN ('zoë', 'ZOË', 'Zoë ')")).all() == []
        for key in ("casekey", "CaseKey ", "CASEKEY"):
            conn.execute(text("INSERT INTO idempotency_keys VALUES ('Acme', :key, 'fp', NULL, '2026-01-01')"),
                         {"key": key})
        assert conn.execute(text("SELECT COUNT(*) FROM idempotency_keys WHERE operator_id = 'Acme'")).scalar() == 4
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=mariadb_only)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/hub.db"
    else:
        yield from throwaway_mariadb_database()


def test_upgrade_numbers_existing_transactions_in_the_order_their_postings_were_written(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0007")
    # Applied (postings written) in the order a, b, c; stamped b, c, a: the clock was read before the locks.
    applied = [("a", "2026-01-01 00:00:03", 1), ("b", "2026-01-01 00:00:01", 3), ("c", "2026-01-01 00:00:02", 5)]
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        for tx, created_at, posting_id in applied:
            conn.execute(text(
                "INSERT INTO ledger_transactions (transaction_id, operator_id, kind, player_id, currency, amount,"
                " balance_after, bonus_amount, bonus_balance_after, round_id, idempotency_key, created_at)"
                " VALUES (:tx, 'op', 'deposit', 'p', 'USD', 10, :balance, 0, 0, NULL, :tx, :created_at)"),
                {"tx": tx, "balance": 10 * posting_id, "created_at": created_at})
            conn.execute(text(
                "INSERT INTO postings (posting_id, transaction_id, operator_id, account_id, currency, amount,"
                " balance_after, entry_hash) VALUES (:id, :tx, 'op', 1, 'USD', 10, 0, ''),"
                " (:id + 1, :tx, 'op', 2, 'USD', -10, 0, '')"), {"id": posting_id, "tx": tx})
    engine.dispose()

    upgrade(empty_url)

    engine = create_engine(empty_url)
    t = ledger_transactions
    with engine.begin() as conn:
        assert conn.execute(select(t.c.seq, t.c.transaction_id, t.c.balance_after).order_by(t.c.seq)).all() == [
            (1, "a", 10), (2, "b", 30), (3, "c", 50)]
        conn.execute(t.insert().values(
            transaction_id="d", operator_id="op", kind="deposit", player_id="p", currency="USD", amount=10,
            balance_after=60, idempotency_key="d", created_at=datetime(2026, 1, 1)))
        assert conn.execute(select(t.c.seq).where(t.c.transaction_id == "d")).scalar_one() == 4
    engine.dispose()
