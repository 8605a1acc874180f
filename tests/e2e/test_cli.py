"""The console script as a newcomer uses it: `hub migrate`, `hub dev` (what `make run` starts),
`hub reconcile` and `hub ledger totals`."""

import asyncio
import json
import os
import pathlib
import re
import signal
import socket
import stat
import sys
import uuid

import aiohttp
import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, inspect

from casinohub.provider.v1 import provider_wallet_service_pb2 as studio_pb, provider_wallet_service_pb2_grpc
from casinohub.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    game_service_pb2 as pb,
    game_service_pb2_grpc,
    report_service_pb2,
    report_service_pb2_grpc,
)
from tests.e2e.test_metrics import refusals_in, scrape
from tests.errors import reason_of
from tests.support import Client, signed

SERVING = health_pb2.HealthCheckResponse.SERVING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def hub_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "hub.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def test_migrate_creates_the_schema(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/var/fresh.db"  # var/ does not exist yet, as on a fresh clone
    (tmp_path / "hub.toml").write_text(f'[hub]\ndatabase_url = "{url}"\n')
    process = await hub_cli("--config", str(tmp_path / "hub.toml"), "migrate")
    assert await asyncio.wait_for(process.wait(), 60) == 0
    engine = create_engine(url)
    assert {"accounts", "postings", "ledger_transactions", "rounds", "play_events"} <= set(
        inspect(engine).get_table_names())
    engine.dispose()


async def test_dev_starts_the_mock_studios_and_the_hub_and_stops_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hub_port, studio_port, table_port, live_port = free_port(), free_port(), free_port(), free_port()
    instant_port, inbound_port, metrics_port = free_port(), free_port(), free_port()
    (tmp_path / "hub.toml").write_text(
        f'[hub]\nlisten = "127.0.0.1:{hub_port}"\ndatabase_url = "sqlite:///{tmp_path}/var/dev.db"\n'
        f'inbound_listen = "127.0.0.1:{inbound_port}"\nmetrics_listen = "127.0.0.1:{metrics_port}"\n\n'
        f'[[providers]]\nname = "reelhouse"\nadapter = "reelhouse"\nurl = "http://127.0.0.1:{studio_port}"\n'
        f'secret = "dev-secret"\n\n'
        f'[[providers]]\nname = "tablehouse"\nadapter = "tablehouse"\nurl = "grpc://127.0.0.1:{table_port}"\n'
        f'secret = "dev-secret"\n\n'
        f'[[providers]]\nname = "livehouse"\nadapter = "livehouse"\nurl = "http://127.0.0.1:{live_port}"\n'
        f'secret = "dev-secret"\n\n'
        f'[[providers]]\nname = "instanthouse"\nadapter = "instanthouse"\n'
        f'url = "http://127.0.0.1:{instant_port}"\nsecret = "dev-secret"\n')
    process = await hub_cli("--config", str(tmp_path / "hub.toml"), "dev")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{hub_port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        started = loop.time()  # four studios, a key each, two workers: ~10 s on a busy 2-core machine
        while loop.time() - started < 90:
            try:
                if (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == SERVING:
                    break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # every RPC needs credentials
            await game_service_pb2_grpc.GameServiceStub(channel).ListGames(pb.ListGamesRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # ... and counted: `hub dev` serves /metrics (make run on 127.0.0.1:9464), every worker's counts in one.
        assert refusals_in(await scrape(metrics_port)) == {("ListGames", "UNAUTHENTICATED", "CREDENTIALS_MISSING"): 1.0}
        assert process.stdout is not None
        printed = ""
        while "administrator token" not in printed:  # `hub dev` prints a key of the sandbox operator
            printed += (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        while "studio 'livehouse'" not in printed:  # and a key of each sandbox studio
            printed += (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        await studio_key_works(channel, printed, tmp_path)
        key_id = re.search(r"key id:  (ck_\w+)", printed).group(1)  # type: ignore[union-attr]
        secret = re.search(r"secret:  (cks_\S+)", printed).group(1)  # type: ignore[union-attr]
        issued = await auth_service_pb2_grpc.AuthServiceStub(channel).IssueToken(
            auth_service_pb2.IssueTokenRequest(key_id=key_id, secret=secret))
        games = await game_service_pb2_grpc.GameServiceStub(channel).ListGames(
            pb.ListGamesRequest(), metadata=(("authorization", f"Bearer {issued.access_token}"),))
        assert [g.game_id for g in games.games] == [
            "instanthouse:crash", "instanthouse:scratch", "livehouse:red-or-black", "reelhouse:fruit-classic", "reelhouse:gem-rush", "reelhouse:lucky-sevens",
            "tablehouse:blackjack", "tablehouse:european-roulette"]
        await every_type_in_three_languages(channel, issued.access_token)
        # The inbound HTTP server (worker 0's) serves instanthouse's wallet protocol: an unsigned call is refused.
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{inbound_port}/instanthouse/balance", json={"token": "t"}) as answered:
            assert await answered.json() == {"status": "INVALID_SIGNATURE"}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        output = printed + (await process.stdout.read()).decode()
        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        # `make run` uses every CPU: one worker per CPU, each serving (a single process on one CPU).
        cpus = len(os.sched_getaffinity(0))
        assert sum(r["event"] == "hub.serving" for r in records) == cpus
        assert sum(r["event"] == "worker.started" for r in records) == (cpus if cpus > 1 else 0)
    finally:
        await channel.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    for port in (studio_port, table_port, live_port, instant_port, inbound_port, metrics_port):  # gone with the hub
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


async def every_type_in_three_languages(channel: grpc.aio.Channel, access_token: str) -> None:
    """`make run`'s catalog: games of all four types, each type named in English, German and Japanese."""
    games = game_service_pb2_grpc.GameServiceStub(channel)
    named: dict[str, dict[int, set[str]]] = {}
    for locale in ("en", "de", "ja"):
        listed = await games.ListGames(pb.ListGamesRequest(locale=locale),
                                       metadata=(("authorization", f"Bearer {access_token}"),))
        named[locale] = {}
        for game in listed.games:
            if game.locale == locale:  # a game without a name in this locale falls back to English
                named[locale].setdefault(game.game_type, set()).add(game.name)
    every_type = {pb.GAME_TYPE_SLOT, pb.GAME_TYPE_TABLE, pb.GAME_TYPE_LIVE, pb.GAME_TYPE_INSTANT}
    for locale in ("en", "de", "ja"):
        assert set(named[locale]) == every_type, (locale, named[locale])
    for game_type in every_type:  # translated, not English under another label ("Blackjack" is German too)
        assert named["de"][game_type] != named["en"][game_type], named
        assert not named["ja"][game_type] & named["en"][game_type], named


async def studio_key_works(channel: grpc.aio.Channel, printed: str, tmp_path: pathlib.Path) -> None:
    """The studio key `hub dev` printed signs a ProviderWalletService call: refused only for its session."""
    found = re.search(r"studio 'reelhouse': .* key id (sk_\w+), private key (\S+)", printed)
    assert found, printed
    key_id, path = found.groups()
    assert pathlib.Path(path) == tmp_path / "var" / "studio-keys" / "reelhouse.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    private = serialization.load_pem_private_key(pathlib.Path(path).read_bytes(), None)
    assert isinstance(private, Ed25519PrivateKey)
    request = studio_pb.AuthenticateRequest(session_token=str(uuid.uuid4()))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await provider_wallet_service_pb2_grpc.ProviderWalletServiceStub(channel).Authenticate(
            request, metadata=signed("/casinohub.provider.v1.ProviderWalletService/Authenticate",
                                     request.SerializeToString(), key_id, private))
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "GAME_SESSION_NOT_FOUND")


async def test_reconcile_reports_and_exits_zero_when_nothing_needs_a_human(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "hub.toml").write_text(f'providers = []\n\n[hub]\ndatabase_url = "sqlite:///{tmp_path}/var/r.db"\n')
    process = await hub_cli("--config", str(tmp_path / "hub.toml"), "reconcile", "--older-than", "0")
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    assert "examined 0 open round(s)" in out.decode()


async def test_ledger_totals_json_matches_the_report_service(hub: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for amount in (1_000, 2_500):
        await hub.new_player(deposit=amount)
    await hub.new_player(deposit=700, currency="JPY")
    (tmp_path / "hub.toml").write_text(f'[hub]\ndatabase_url = "{hub.database_url}"\n')
    process = await hub_cli("--config", str(tmp_path / "hub.toml"), "ledger", "totals", "--operator",
                            hub.operator_id, "--json")
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    [report] = json.loads(out)["operators"]
    assert report["operator_id"] == hub.operator_id
    served = await report_service_pb2_grpc.ReportServiceStub(hub.channel).GetLedgerTotals(
        report_service_pb2.GetLedgerTotalsRequest(), metadata=hub.metadata)
    assert report["totals"] == [
        {"currency": t.currency, "house": t.house.amount_minor, "house_shards": t.house_shards,
         "player_cash": t.player_cash.amount_minor, "player_hold": t.player_hold.amount_minor,
         "player_bonus": t.player_bonus.amount_minor, "promotion": t.promotion.amount_minor,
         "external": t.external.amount_minor, "other": 0, "net": t.net.amount_minor} for t in served.totals]
    assert [(t["currency"], t["player_cash"], t["external"], t["net"]) for t in report["totals"]] == [
        ("JPY", 700, -700, 0), ("USD", 3_500, -3_500, 0)]

    process = await hub_cli("--config", str(tmp_path / "hub.toml"), "ledger", "totals", "--operator",
                            hub.operator_id, "--currency", "XXX")
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2 and "unknown currency 'XXX'" in out.decode()
