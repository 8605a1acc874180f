"""Migrations that change how existing data is stored, run on databases holding data."""

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from hub.ledger.schema import COLLATION, metadata
from hub.migrate import alembic_config, upgrade
from tests.conftest import throwaway_mariadb_database

pytestmark = pytest.mark.mariadb


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


@pytest.fixture(params=[None, "latin1"], ids=["server-default", "latin1"])
def fresh_mariadb_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database created with the server's defaults, or with latin1 (MariaDB's own default
    before 11.6, so common on older production servers)."""
    yield from throwaway_mariadb_database(request.param)


def test_every_text_column_of_a_migrated_database_compares_byte_for_byte(mariadb_url: str) -> None:
    assert_byte_for_byte(mariadb_url, {*metadata.tables, "alembic_version"})


def test_tables_created_from_the_schema_compare_byte_for_byte(fresh_mariadb_url: str) -> None:
    engine = create_engine(fresh_mariadb_url)
    metadata.create_all(engine)
    engine.dispose()
    found = collations(fresh_mariadb_url)
    assert {name: c for name, c in found.items() if name and c != COLLATION} == {}


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
