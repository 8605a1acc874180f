"""Migrations that change how existing data is stored, run on databases holding data."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from alembic import command
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from adapters.base import Proof
from casinohub.v1 import common_pb2, game_service_pb2 as game_pb, wallet_service_pb2 as wallet_pb
from hub import records
from hub.catalog import Catalog
from hub.events import PlayEvent
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.idempotency import fingerprint
from hub.ledger.rounds import Receipt, RoundLedger
from hub.ledger.schema import (
    COLLATION,
    game_sessions,
    idempotency_keys,
    ledger_transactions,
    metadata,
    operator_country_blocks,
    operator_disabled_studios,
    operator_rtp_variants,
    play_events,
    players,
    rounds,
)
from hub.migrate import alembic_config, upgrade
from hub.money import Money
from hub.page_tokens import PageTokens
from hub.play import GameSession, Play, round_id_for
from hub.players import Players, SessionSettings
from hub.promotions import Promotions
from hub.servicers import mapping
from hub.wallet import Wallet
from tests.fakes import FakeStudio
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


# -- 0010: protobuf-encoded rows become the JSON records of hub.records ---------------------------------------

def _money_pb(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency="USD", amount_minor=amount)


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.replace(tzinfo=UTC))
    return stamp


def _event_pb(seq: int, replay_of_seq: int = 0, **event: Message) -> bytes:
    return game_pb.PlayResponse(seq=seq, replay_of_seq=replay_of_seq, **event).SerializeToString(deterministic=True)


OPERATOR, PLAYER, SESSION, GAME = "op", "p-1", "gs-1", "fake:coin-flip"
EXPIRES = datetime(2999, 1, 1, 12, 0, 0, 250_000)
CREATED = datetime(2026, 1, 2, 3, 4, 5, 678_901)
ROUND = round_id_for(OPERATOR, "bet-1")
PROOF = game_pb.ProvablyFairProof(server_seed_hash="ab" * 32, client_seed="c", nonce=7)
REFUSED = common_pb2.ErrorDetail(code=grpc.StatusCode.FAILED_PRECONDITION.value[0], reason="INSUFFICIENT_FUNDS",
                                 message="cash 0 plus bonus 0 is below the bet of 100", retryable=False,
                                 state=common_pb2.APPLY_STATE_NOT_APPLIED)
# What a hub before 0010 stored: a game session's log (a round, a refused bet, a replayed bet's copy) ...
OLD_EVENTS = {
    1: (None, _event_pb(1, session_opened=game_pb.SessionOpened(
        game_session_id=SESSION, game_id=GAME, balance=_money_pb(1_000), bonus_balance=_money_pb(0)))),
    2: (ROUND, _event_pb(2, round_opened=game_pb.RoundOpened(round_id=ROUND, idempotency_key="bet-1"))),
    3: (ROUND, _event_pb(3, bet_accepted=game_pb.BetAccepted(
        round_id=ROUND, transaction_id="t-bet", amount=_money_pb(100), balance=_money_pb(900),
        bonus_balance=_money_pb(0)))),
    4: (ROUND, _event_pb(4, outcome=game_pb.Outcome(round_id=ROUND, result="HEADS", win=_money_pb(200),
                                                    proof=PROOF))),
    5: (ROUND, _event_pb(5, settled=game_pb.Settled(round_id=ROUND, transaction_ids=["t-bet", "t-win"],
                                                    win=_money_pb(200), balance=_money_pb(1_100),
                                                    bonus_balance=_money_pb(0)))),
    6: (None, _event_pb(6, error=game_pb.PlayError(idempotency_key="bet-2", error=REFUSED,
                                                   balance=_money_pb(1_100)))),
    7: (None, _event_pb(7, 2, round_opened=game_pb.RoundOpened(round_id=ROUND, idempotency_key="bet-1"))),
    8: (None, _event_pb(8, session_closed=game_pb.SessionClosed(game_session_id=SESSION))),
}
BONUS = wallet_pb.Bonus(bonus_id="b-1", player_id=PLAYER, amount=_money_pb(500), balance=_money_pb(500),
                        wagering_requirement=_money_pb(2_000), wagered=_money_pb(0),
                        status=wallet_pb.BONUS_STATUS_ACTIVE, expires_at=_stamp(EXPIRES),
                        created_at=_stamp(CREATED))
GRANT = common_pb2.FreeRoundGrant(grant_id="g-1", player_id=PLAYER, game_id=GAME, bet=_money_pb(100), rounds=3,
                                  rounds_left=3, expires_at=_stamp(EXPIRES), created_at=_stamp(CREATED))
# ... and idempotent responses: key -> (fingerprint, response, the ledger transaction the key made).
OLD_RESPONSES = {
    "dep-1": (fingerprint("deposit", PLAYER, "USD", 5_000), wallet_pb.DepositResponse(
        transaction_id="t-dep", balance=_money_pb(5_000)), ("t-dep", "deposit")),
    "wd-1": (fingerprint("withdrawal", PLAYER, "USD", 1_000), wallet_pb.WithdrawResponse(
        transaction_id="t-wd", balance=_money_pb(4_000), withdrawal_id="w-1",
        status=wallet_pb.WITHDRAWAL_STATUS_PENDING), ("t-wd", "withdrawal")),
    "bonus-1": (fingerprint("bonus", PLAYER, "USD", 500, 2_000, EXPIRES.isoformat()), wallet_pb.GrantBonusResponse(
        transaction_id="t-bonus", bonus=BONUS), ("t-bonus", "bonus_granted")),
    "fr-1": (fingerprint("free_rounds", PLAYER, GAME, "USD", 100, 3, EXPIRES.isoformat()),
             game_pb.GrantFreeRoundsResponse(grant=GRANT), None),
}
RECEIPT = Receipt(ROUND, "USD", 900, "t-bet").encode()
OLD_PROOF = json.dumps({"server_seed_hash": "ab" * 32, "client_seed": "c", "nonce": 7, "server_seed": ""})


def _write_old_rows(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(players.insert().values(player_id=PLAYER, operator_id=OPERATOR, username="old",
                                             password_hash="-", status="active", created_at=CREATED))
        conn.execute(game_sessions.insert().values(
            game_session_id=SESSION, operator_id=OPERATOR, player_id=PLAYER, game_id=GAME, currency="USD",
            client_seed="c", server_seed_hash="ab" * 32, last_seq=len(OLD_EVENTS), created_at=CREATED,
            expires_at=EXPIRES))
        conn.execute(rounds.insert().values(
            operator_id=OPERATOR, round_id=ROUND, game_session_id=SESSION, player_id=PLAYER, game_id=GAME,
            currency="USD", status="SETTLED", bet_amount=100, win_amount=200, provider_round_id="p-1",
            result="HEADS", proof=OLD_PROOF, opened_at=CREATED, closed_at=CREATED))
        for seq, (round_id, payload) in OLD_EVENTS.items():
            conn.execute(play_events.insert().values(game_session_id=SESSION, seq=seq, operator_id=OPERATOR,
                                                     round_id=round_id, payload=payload, created_at=CREATED))
        conn.execute(idempotency_keys.insert().values(
            operator_id=OPERATOR, idempotency_key="bet-1", created_at=CREATED, response=RECEIPT,
            fingerprint=fingerprint("bet", PLAYER, "USD", ROUND, 100, SESSION)))
        conn.execute(idempotency_keys.insert().values(operator_id=OPERATOR, idempotency_key="claimed",
                                                      fingerprint="fp", response=None, created_at=CREATED))
        for key, (fp, response, made) in OLD_RESPONSES.items():
            conn.execute(idempotency_keys.insert().values(
                operator_id=OPERATOR, idempotency_key=key, fingerprint=fp, created_at=CREATED,
                response=response.SerializeToString(deterministic=True)))
            if made:
                conn.execute(ledger_transactions.insert().values(
                    transaction_id=made[0], operator_id=OPERATOR, kind=made[1], player_id=PLAYER, currency="USD",
                    amount=0, balance_after=0, idempotency_key=key, created_at=CREATED))
    engine.dispose()


def _stored(url: str) -> tuple[dict[int, bytes], dict[str, bytes | None], str]:
    engine = create_engine(url)
    with engine.begin() as conn:
        events = {seq: bytes(p) for seq, p in conn.execute(select(play_events.c.seq, play_events.c.payload))}
        responses = {k: None if r is None else bytes(r) for k, r in conn.execute(
            select(idempotency_keys.c.idempotency_key, idempotency_keys.c.response))}
        proof = conn.execute(select(rounds.c.proof)).scalar_one()
    engine.dispose()
    return events, responses, proof


async def test_upgrade_converts_protobuf_rows_so_resume_and_replays_answer_as_before(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0009")
    _write_old_rows(empty_url)

    upgrade(empty_url)

    events, responses, proof = _stored(empty_url)
    # Each row now holds exactly what this hub writes for its event, response or proof.
    assert {seq: records.encode(records.decode(p, PlayEvent)) for seq, p in events.items()} == events
    for key in OLD_RESPONSES:
        stored = responses[key]
        assert stored is not None and records.encode(records.decode(stored, object)) == stored
    assert records.encode(records.decode(proof, Proof)).decode() == proof
    assert (responses["bet-1"], responses["claimed"]) == (RECEIPT, None)  # receipts were JSON already
    assert records.decode(proof, Proof) == Proof("ab" * 32, "c", 7)
    db = Database.from_url(empty_url, workers=2)
    engine = SettlementEngine(db)
    studio = FakeStudio()
    catalog = Catalog({"fake": studio}, PageTokens(b"test"))
    play = Play(db, engine, catalog, Players(db, SessionSettings(), PageTokens(b"test")), RoundLedger(8), timedelta(days=1),
                timedelta(seconds=1))
    session = GameSession(SESSION, OPERATOR, PLAYER, GAME, "USD", EXPIRES)
    try:
        # Resume sends the stored events exactly as the old hub stored them, then SessionOpened.
        resumed = [mapping.play_response(e) async for e in play.resume(session, 0)]
        assert [e.SerializeToString(deterministic=True) for e in resumed[:-1]] == [p for _, p in OLD_EVENTS.values()]
        assert (resumed[-1].seq, resumed[-1].WhichOneof("event")) == (9, "session_opened")
        # A replayed bet copies its round's original events, new seqs, replay_of_seq naming them.
        replayed = [mapping.play_response(e) async for e in play.bet(session, Money("USD", 100), "bet-1")]
        assert [(e.seq, e.replay_of_seq) for e in replayed] == [(10, 2), (11, 3), (12, 4), (13, 5)]
        for copy in replayed:
            original = game_pb.PlayResponse.FromString(OLD_EVENTS[copy.replay_of_seq][1])
            original.seq, original.replay_of_seq = copy.seq, copy.replay_of_seq
            assert copy == original
        assert studio.plays == []  # nothing was played or debited again
        # Replayed keys of the cashier and promotions answer what they answered before.
        wallet = Wallet(db, engine, 8, PageTokens(b"test"))
        promotions = Promotions(db, engine, catalog, 8)
        answers = {
            "dep-1": mapping.deposited(await wallet.deposit(OPERATOR, PLAYER, Money("USD", 5_000), "dep-1")),
            "wd-1": mapping.withdrawn(await wallet.withdraw(OPERATOR, PLAYER, Money("USD", 1_000), "wd-1")),
            "bonus-1": mapping.bonus_granted(await promotions.grant_bonus(
                OPERATOR, PLAYER, Money("USD", 500), Money("USD", 2_000), EXPIRES, "bonus-1")),
            "fr-1": mapping.free_rounds_granted(await promotions.grant_free_rounds(
                OPERATOR, PLAYER, GAME, Money("USD", 100), 3, EXPIRES, "fr-1")),
        }
        assert {k: a.SerializeToString(deterministic=True) for k, a in answers.items()} == {
            k: r.SerializeToString(deterministic=True) for k, (_, r, _) in OLD_RESPONSES.items()}
        assert mapping.round_(await play.get_round(OPERATOR, ROUND)).round.proof == PROOF
    finally:
        engine.close()
        db.close()


def test_downgrade_restores_the_protobuf_rows_byte_for_byte(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0009")
    _write_old_rows(empty_url)
    before = _stored(empty_url)
    upgrade(empty_url)
    assert _stored(empty_url) != before

    command.downgrade(alembic_config(empty_url), "0009")

    assert _stored(empty_url) == before


# -- 0012: per-operator catalog settings, and the RTP variant a game session was launched at -------------------


def test_catalog_settings_upgrade_keeps_sessions_at_the_default_variant_and_downgrades(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0011")
    engine = create_engine(empty_url)
    now = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO game_sessions (game_session_id, operator_id, player_id, game_id, currency, client_seed,"
            " server_seed_hash, last_seq, created_at, expires_at) VALUES ('gs-old', 'op', 'p', 'reelhouse:g',"
            " 'USD', 'c', :h, 3, :now, :now)"), {"h": "0" * 64, "now": now})
    command.upgrade(alembic_config(empty_url), "0012")
    with engine.begin() as conn:
        assert conn.execute(select(game_sessions.c.rtp_variant, game_sessions.c.last_seq)).one() == ("", 3)
        for table in (operator_disabled_studios, operator_country_blocks, operator_rtp_variants):
            assert conn.execute(select(table)).all() == []
        conn.execute(operator_country_blocks.insert().values(operator_id="op", target="reelhouse", country="DE"))
        with pytest.raises(IntegrityError):  # one row per (operator, target, country)
            conn.execute(operator_country_blocks.insert().values(operator_id="op", target="reelhouse",
                                                                 country="DE"))
    with engine.begin() as conn:
        # Byte for byte: another operator id differing only in case is another operator.
        conn.execute(operator_country_blocks.insert().values(operator_id="OP", target="reelhouse", country="DE"))
    command.downgrade(alembic_config(empty_url), "0011")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT game_session_id, last_seq FROM game_sessions")).one() == ("gs-old", 3)
        tables = set(inspect(conn).get_table_names())
    assert not tables & {"operator_disabled_studios", "operator_country_blocks", "operator_rtp_variants"}


# -- 0013: sessions become logins with refresh-token families; responsible-gaming tables ------------------

def test_0013_ends_old_sessions_keeps_players_and_downgrades(empty_url: str) -> None:
    """Sessions from before 0013 hold no family, refresh token or idle clock: they end (log in again)."""
    command.upgrade(alembic_config(empty_url), "0011")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO players VALUES ('p-1', 'Acme', 'zoe', 'hash', 'active', '2026-01-01')"))
        conn.execute(text("INSERT INTO player_sessions VALUES ('h1', 'Acme', 'p-1', '2026-01-01', '2099-01-01')"))
    command.upgrade(alembic_config(empty_url), "0013")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT player_id FROM players")).all() == [("p-1",)]
        assert conn.execute(text("SELECT COUNT(*) FROM player_sessions")).scalar() == 0
        for table in ("player_session_tokens", "self_exclusions", "player_limits"):
            assert conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0
    engine.dispose()  # a pooled SQLite connection would keep the schema it read
    command.downgrade(alembic_config(empty_url), "0011")
    with engine.begin() as conn:  # the old shape again, usable by a hub of 0011
        conn.execute(text("INSERT INTO player_sessions VALUES ('h2', 'Acme', 'p-1', '2026-01-01', '2099-01-01')"))
        assert conn.execute(text("SELECT COUNT(*) FROM player_sessions")).scalar() == 1
    engine.dispose()


# -- 0014: studio keys ---------------------------------------------------------------------------------------

def test_0014_adds_studio_keys_and_takes_them_away_again(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0013")
    upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO studio_keys (key_id, studio_id, public_key, created_at)"
                          " VALUES ('sk_1', 'reelhouse', 'pk', '2026-01-01')"))
        with pytest.raises(IntegrityError), conn.begin_nested():  # key ids compare byte for byte, and are unique
            conn.execute(text("INSERT INTO studio_keys (key_id, studio_id, public_key, created_at)"
                              " VALUES ('sk_1', 'tablehouse', 'pk', '2026-01-01')"))
        conn.execute(text("INSERT INTO studio_keys (key_id, studio_id, public_key, created_at)"
                          " VALUES ('SK_1', 'tablehouse', 'pk', '2026-01-01')"))
    engine.dispose()
    command.downgrade(alembic_config(empty_url), "0013")
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        tables = set(conn.dialect.get_table_names(conn))
    engine.dispose()
    assert "studio_keys" not in tables and "api_keys" in tables


# -- 0015: operator limits -----------------------------------------------------------------------------------

def test_0015_adds_operator_limits_and_the_id_indexes_and_takes_them_away_again(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0014")
    upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO operator_limits (operator_id, rate_per_s, updated_at)"
                          " VALUES ('Acme', 0.25, '2026-01-01')"))
        conn.execute(text("INSERT INTO operator_limits (operator_id, session_cap, updated_at)"
                          " VALUES ('acme', 2, '2026-01-01')"))  # operator ids compare byte for byte
        assert conn.execute(text("SELECT rate_per_s, burst FROM operator_limits WHERE operator_id = 'Acme'")
                            ).one() == (0.25, None)
    indexed = {(t, tuple(i["column_names"])) for t in ("rounds", "withdrawals", "bonuses")
               for i in inspect(engine).get_indexes(t)}
    assert {("rounds", ("round_id",)), ("withdrawals", ("withdrawal_id",)), ("bonuses", ("bonus_id",))} <= indexed
    engine.dispose()
    command.downgrade(alembic_config(empty_url), "0014")
    engine = create_engine(empty_url)
    assert "operator_limits" not in inspect(engine).get_table_names()
    assert ("round_id",) not in [tuple(i["column_names"]) for i in inspect(engine).get_indexes("rounds")]
    engine.dispose()
# -- 0016: client certificates, studio key allowlists, player:read for keys made before it --------------------

OLD_SCOPES = "game:read game:play wallet:read wallet:write player:write report:read"  # a default key before 0013
KEYS_BEFORE_0016 = {
    "ck_old": (OLD_SCOPES, None),  # gets player:read
    "ck_old_player": ("player:write", None),  # gets player:read
    "ck_wallet": ("wallet:read wallet:write", None),  # never given player access: left alone
    "ck_new": ("game:read player:read player:write", None),  # made after 0013: holds it already
    "ck_revoked": (OLD_SCOPES, "2026-01-02"),  # revoked: nothing to grant
}


def _scopes(url: str) -> dict[str, str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT key_id, scopes FROM api_keys")).all())  # type: ignore[arg-type]
    engine.dispose()
    return found


def test_0016_grants_player_read_to_keys_made_before_it_and_its_downgrade_takes_exactly_that_away(
        empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0014")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO operators (operator_id, name, created_at) VALUES ('op', 'Op', '2026-01-01')"))
        for key_id, (scopes, revoked_at) in KEYS_BEFORE_0016.items():
            conn.execute(text(
                "INSERT INTO api_keys (key_id, operator_id, secret_hash, scopes, environment, created_at, revoked_at)"
                " VALUES (:key_id, 'op', 'h', :scopes, 'sandbox', '2026-01-01', :revoked_at)"),
                {"key_id": key_id, "scopes": scopes, "revoked_at": revoked_at})
        conn.execute(text("INSERT INTO studio_keys (key_id, studio_id, public_key, created_at)"
                          " VALUES ('sk_1', 'reelhouse', 'pk', '2026-01-01')"))
    engine.dispose()
    before = _scopes(empty_url)

    command.upgrade(alembic_config(empty_url), "0016")

    after = _scopes(empty_url)
    assert after == {**before,
                     "ck_old": "game:read game:play wallet:read wallet:write player:read player:write report:read",
                     "ck_old_player": "player:read player:write"}
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT key_id, scope FROM api_key_scope_grants ORDER BY key_id")).all() == [
            ("ck_old", "player:read"), ("ck_old_player", "player:read")]
        assert conn.execute(text("SELECT key_id, ip_allowlist FROM studio_keys")).all() == [("sk_1", "")]
        conn.execute(text("INSERT INTO client_certificates VALUES ('op', :f, '', '2026-01-01')"), {"f": "a" * 64})
        with pytest.raises(IntegrityError), conn.begin_nested():  # one row per operator and fingerprint
            conn.execute(text("INSERT INTO client_certificates VALUES ('op', :f, '', '2026-01-01')"), {"f": "a" * 64})
        conn.execute(text("INSERT INTO client_certificates VALUES ('OP', :f, '', '2026-01-01')"), {"f": "a" * 64})
        # A key made after the upgrade, with player:write alone, is not the migration's: the downgrade keeps it.
        conn.execute(text("INSERT INTO api_keys (key_id, operator_id, scopes, environment, created_at)"
                          " VALUES ('ck_later', 'op', 'player:read player:write', 'sandbox', '2026-01-03')"))
    engine.dispose()
    command.upgrade(alembic_config(empty_url), "head")  # idempotent from here: nothing granted twice
    assert _scopes(empty_url) == {**after, "ck_later": "player:read player:write"}

    command.downgrade(alembic_config(empty_url), "0014")

    assert _scopes(empty_url) == {**before, "ck_later": "player:read player:write"}
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        tables = set(conn.dialect.get_table_names(conn))
        studio_columns = {c["name"] for c in inspect(conn).get_columns("studio_keys")}
    engine.dispose()
    assert not tables & {"client_certificates", "api_key_scope_grants"}
    assert "ip_allowlist" not in studio_columns and "studio_id" in studio_columns
