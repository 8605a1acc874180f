"""The argon2 cost knob (hub/passwords.py): production keeps argon2-cffi's default cost; a hub hashes at the
cost it is configured with, and verifies hashes made at any cost (the test suite runs at the cheapest)."""

from dataclasses import replace

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import create_engine, select

from casinohub.v1 import player_service_pb2 as ppb
from hub.config import Config
from hub.ledger.schema import players
from hub.passwords import DEFAULT, hashing
from tests.fakes import FakeStudio
from tests.support import CHEAP_HASHES, start_hub


def test_the_default_cost_is_argon2s_own() -> None:
    config, default = Config(), PasswordHasher()
    hasher = hashing(config.password_hash_time_cost, config.password_hash_memory_kib).hasher
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.type) == (
        default.time_cost, default.memory_cost, default.parallelism, default.type)
    assert default.verify(DEFAULT.dummy_hash, "not-a-real-password")
    assert DEFAULT is hashing(config.password_hash_time_cost, config.password_hash_memory_kib)  # made once


async def test_a_hub_hashes_at_its_cost_and_verifies_any(database_url: str) -> None:
    cheap = await start_hub(database_url, {"fake": FakeStudio()})  # tests/support.py's hubs hash cheaply
    costly = await start_hub(database_url, {"fake": FakeStudio()}, password_hash_time_cost=3,
                             password_hash_memory_kib=65_536)
    try:
        for made_by, logs_in in ((cheap, costly), (costly, cheap)):
            username = f"u{id(made_by)}"
            await made_by.players.RegisterPlayer(ppb.RegisterPlayerRequest(username=username, password="s3cret-pass"),
                                                 metadata=made_by.metadata)
            other = replace(logs_in, operator_id=made_by.operator_id)  # the other hub, as the same operator
            other.token = made_by.token
            login = await other.players.Login(ppb.LoginRequest(username=username, password="s3cret-pass"),
                                              metadata=other.metadata)
            assert login.session_token
        engine = create_engine(database_url)
        with engine.connect() as conn:
            stored = dict(conn.execute(select(players.c.operator_id, players.c.password_hash).where(
                players.c.operator_id.in_([cheap.operator_id, costly.operator_id]))).all())
        engine.dispose()
        time_cost, memory_kib = CHEAP_HASHES["password_hash_time_cost"], CHEAP_HASHES["password_hash_memory_kib"]
        assert f"$m={memory_kib},t={time_cost},p=4$" in stored[cheap.operator_id]
        assert "$m=65536,t=3,p=4$" in stored[costly.operator_id]
        for hashed in stored.values():
            with pytest.raises(VerificationError):
                PasswordHasher().verify(hashed, "wrong-password")
    finally:
        for hub in (cheap, costly):
            await hub.channel.close()
            await hub.server.stop(grace=1)
