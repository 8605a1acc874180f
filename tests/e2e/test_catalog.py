"""One catalog across both live mock studios: ListGames' filters, locales and pages, and each operator's
catalog settings (enabled studios, blocked countries, RTP variants) through AdminService, on both databases."""

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from casinohub.v1 import admin_service_pb2 as admin_pb, admin_service_pb2_grpc, game_service_pb2 as pb
from hub.config import ProviderSettings
from mock_providers.reelhouse.server import STUDIO, Studio, start_server
from mock_providers.tablehouse.server import start_server as start_table_server
from tests.e2e.play_client import kinds, opened_stream
from tests.errors import reason_of
from tests.support import Client, start_hub

SECRET = "catalog-e2e-secret"
ADMIN_TOKEN = "catalog-admin-" + "t" * 32
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
ALL = ["reelhouse:fruit-classic", "reelhouse:gem-rush", "reelhouse:lucky-sevens", "tablehouse:blackjack",
       "tablehouse:european-roulette"]


@dataclass
class Live:
    hub: Client
    reelhouse: Studio
    providers: tuple[ProviderSettings, ...]

    @property
    def admin(self) -> admin_service_pb2_grpc.AdminServiceStub:
        return admin_service_pb2_grpc.AdminServiceStub(self.hub.channel)

    async def other_operator(self) -> Client:
        """Operator B on the same hub, with its own credentials."""
        operator_id = f"op-b-{uuid.uuid4().hex[:8]}"
        await self.admin.CreateOperator(admin_pb.CreateOperatorRequest(operator_id=operator_id), metadata=ADMIN)
        return dataclasses.replace(self.hub, operator_id=operator_id)


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Live]:
    runner, port = await start_server(port=0, secret=SECRET)
    table_server, table_port, _ = await start_table_server(port=0, secret=SECRET)
    providers = (
        ProviderSettings(name="reelhouse", adapter="reelhouse", url=f"http://127.0.0.1:{port}", secret=SECRET,
                         timeout_s=0.5),
        ProviderSettings(name="tablehouse", adapter="tablehouse", url=f"grpc://127.0.0.1:{table_port}",
                         secret=SECRET, timeout_s=0.5))
    hub = await start_hub(database_url, None, providers=providers, admin_token=ADMIN_TOKEN,
                          studio_health_ttl_s=0.1, catalog_settings_ttl_s=0.5)
    yield Live(hub, runner.app[STUDIO], providers)
    await hub.channel.close()
    await hub.server.stop(grace=1)
    await table_server.stop(None)
    await runner.cleanup()


async def listed(hub: Client, **request: object) -> list[pb.Game]:
    """Every page of a listing, page_size 1 so each filter is also paged through."""
    games: list[pb.Game] = []
    token = ""
    while True:
        page = await hub.games.ListGames(pb.ListGamesRequest(page_size=1, page_token=token, **request),
                                         metadata=hub.metadata)
        games += page.games
        token = page.next_page_token
        if not token:
            return games


async def ids(hub: Client, **request: object) -> list[str]:
    return [g.game_id for g in await listed(hub, **request)]


async def refused(call, reason: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert reason_of(err.value) == (code, reason)


# -- ListGames: filters, locales, pages ------------------------------------------------------------------------


async def test_each_filter_narrows_the_merged_catalog(live: Live) -> None:
    hub = live.hub
    assert await ids(hub) == ALL
    assert await ids(hub, game_type=pb.GAME_TYPE_SLOT) == ALL[:3]
    assert await ids(hub, game_type=pb.GAME_TYPE_TABLE) == ALL[3:]
    assert await ids(hub, game_type=pb.GAME_TYPE_INSTANT) == []
    assert await ids(hub, provider="tablehouse") == ALL[3:]
    assert await ids(hub, currency="USDT") == ALL[3:]  # only Tablehouse counts USDT
    assert await ids(hub, features=["jackpot"]) == ["reelhouse:lucky-sevens"]
    assert await ids(hub, features=["multiplier", "bonus_buy"]) == ["reelhouse:gem-rush"]
    assert await ids(hub, features=["jackpot", "bonus_buy"]) == []  # every flag must hold
    assert await ids(hub, text="ROUL") == ["tablehouse:european-roulette"]  # name, case-insensitive
    assert await ids(hub, text="sevens") == ["reelhouse:lucky-sevens"]
    assert await ids(hub, text="reelhouse:gem") == ["reelhouse:gem-rush"]  # the id
    assert await ids(hub, text="Edelstein") == []  # German names only in German
    assert await ids(hub, text="Edelstein", locale="de") == ["reelhouse:gem-rush"]
    assert await ids(hub, game_type=pb.GAME_TYPE_SLOT, features=["free_spins"], currency="EUR",
                     text="fruit") == ["reelhouse:fruit-classic"]
    fruit = (await listed(hub, text="fruit-classic"))[0]
    assert (fruit.features, fruit.rtp_variant, fruit.rtp_basis_points) == (["free_spins"], "96", 9614)
    assert fruit.game_type == pb.GAME_TYPE_SLOT and fruit.max_win_multiplier == 150


async def test_names_follow_the_locale_and_fall_back_to_english(live: Live) -> None:
    hub = live.hub

    async def names(locale: str) -> dict[str, tuple[str, str]]:
        return {g.game_id: (g.name, g.locale) for g in await listed(hub, locale=locale)}

    english = await names("")
    assert english["reelhouse:gem-rush"] == ("Gem Rush", "en")
    assert (await names("de"))["reelhouse:gem-rush"] == ("Edelsteinrausch", "de")
    assert (await names("de-AT"))["tablehouse:european-roulette"] == ("Europäisches Roulette", "de")
    assert (await names("DE"))["reelhouse:gem-rush"] == ("Edelsteinrausch", "de")
    japanese = await names("ja")
    assert japanese["reelhouse:fruit-classic"] == ("フルーツクラシック", "ja")
    assert japanese["reelhouse:lucky-sevens"] == ("Lucky Sevens", "en")  # no Japanese name
    assert await names("fr") == english  # an unknown locale is English
    for bad in ("d", "de_DE", "de-", "x" * 36, "d3", "de-AT!", "日本"):
        await refused(hub.games.ListGames(pb.ListGamesRequest(locale=bad), metadata=hub.metadata),
                      "FIELD_TOO_LONG" if len(bad) > 35 else "INVALID_ARGUMENT")


async def test_pages_carry_the_filters_and_refuse_other_ones(live: Live) -> None:
    hub = live.hub
    request = dict(features=["free_spins"], locale="ja", text="")
    assert await ids(hub, **request) == ["reelhouse:fruit-classic"]
    first = await hub.games.ListGames(pb.ListGamesRequest(page_size=2, locale="de"), metadata=hub.metadata)
    assert [g.game_id for g in first.games] == ALL[:2] and first.next_page_token
    second = await hub.games.ListGames(pb.ListGamesRequest(page_size=10, locale="de",
                                                           page_token=first.next_page_token), metadata=hub.metadata)
    assert [g.game_id for g in second.games] == ALL[2:] and not second.next_page_token
    assert second.games[0].name == "Glückliche Sieben"
    for other in (dict(locale="ja"), dict(locale="de", text="a"), dict(locale="de", features=["jackpot"]),
                  dict(locale="de", country="DE")):
        await refused(hub.games.ListGames(pb.ListGamesRequest(page_size=2, page_token=first.next_page_token,
                                                              **other), metadata=hub.metadata),
                      "INVALID_PAGE_TOKEN")


async def test_bad_filters_are_refused(live: Live) -> None:
    hub = live.hub
    for request in (pb.ListGamesRequest(features=["laser_show"]), pb.ListGamesRequest(features=["jackpot"] * 9),
                    pb.ListGamesRequest(country="D1"), pb.ListGamesRequest(game_type=99)):
        await refused(hub.games.ListGames(request, metadata=hub.metadata), "INVALID_ARGUMENT")


# -- per-operator settings ---------------------------------------------------------------------------------------


async def test_a_new_operator_has_every_studio_enabled_and_nothing_blocked(live: Live) -> None:
    b = await live.other_operator()
    settings = (await live.admin.GetCatalogSettings(admin_pb.GetCatalogSettingsRequest(operator_id=b.operator_id),
                                                    metadata=ADMIN)).settings
    assert [(s.studio, s.enabled, s.healthy, list(s.blocked_countries)) for s in settings.studios] == [
        ("reelhouse", True, True, []), ("tablehouse", True, True, [])]
    fruit = next(g for g in settings.games if g.game_id == "reelhouse:fruit-classic")
    assert [(v.variant, v.rtp_basis_points) for v in fruit.rtp_variants] == [("96", 9614), ("94", 9401)]
    assert fruit.rtp_variant == ""
    await refused(live.admin.GetCatalogSettings(admin_pb.GetCatalogSettingsRequest(operator_id="nobody"),
                                                metadata=ADMIN), "OPERATOR_NOT_FOUND", grpc.StatusCode.NOT_FOUND)
    # Operators cannot configure themselves.
    await refused(live.admin.SetStudioEnabled(admin_pb.SetStudioEnabledRequest(
        operator_id=b.operator_id, studio="reelhouse"), metadata=b.metadata), "SCOPE_MISSING",
        grpc.StatusCode.PERMISSION_DENIED)


async def test_operator_a_disabling_a_studio_leaves_operator_b_untouched(live: Live) -> None:
    a, b = live.hub, await live.other_operator()
    _, token = await a.new_player(deposit=1_000)
    answer = await live.admin.SetStudioEnabled(admin_pb.SetStudioEnabledRequest(
        operator_id=a.operator_id, studio="reelhouse", enabled=False), metadata=ADMIN)
    assert [(s.studio, s.enabled) for s in answer.settings.studios] == [("reelhouse", False), ("tablehouse", True)]
    assert await ids(a) == ALL[3:]
    assert await ids(b) == ALL
    await refused(a.games.LaunchGame(pb.LaunchGameRequest(session_token=token, game_id="reelhouse:gem-rush",
                                                          currency="USD"), metadata=a.metadata),
                  "STUDIO_DISABLED", grpc.StatusCode.FAILED_PRECONDITION)
    _, b_token = await b.new_player()
    await b.games.LaunchGame(pb.LaunchGameRequest(session_token=b_token, game_id="reelhouse:gem-rush",
                                                  currency="USD"), metadata=b.metadata)
    await live.admin.SetStudioEnabled(admin_pb.SetStudioEnabledRequest(
        operator_id=a.operator_id, studio="reelhouse", enabled=True), metadata=ADMIN)
    assert await ids(a) == ALL
    await a.games.LaunchGame(pb.LaunchGameRequest(session_token=token, game_id="reelhouse:gem-rush",
                                                  currency="USD"), metadata=a.metadata)
    await refused(live.admin.SetStudioEnabled(admin_pb.SetStudioEnabledRequest(
        operator_id=a.operator_id, studio="nostudio"), metadata=ADMIN), "STUDIO_NOT_FOUND", grpc.StatusCode.NOT_FOUND)


async def test_blocked_countries_hide_games_and_refuse_launches(live: Live) -> None:
    a, b = live.hub, await live.other_operator()
    _, token = await a.new_player()

    def launch(game_id: str, country: str = "") -> object:
        return a.games.LaunchGame(pb.LaunchGameRequest(session_token=token, game_id=game_id, currency="USD",
                                                       country=country), metadata=a.metadata)

    await live.admin.SetBlockedCountries(admin_pb.SetBlockedCountriesRequest(
        operator_id=a.operator_id, game_id="reelhouse:gem-rush", countries=["de", "AT"]), metadata=ADMIN)
    settings = await live.admin.SetBlockedCountries(admin_pb.SetBlockedCountriesRequest(
        operator_id=a.operator_id, studio="tablehouse", countries=["US"]), metadata=ADMIN)
    assert next(g for g in settings.settings.games if g.game_id == "reelhouse:gem-rush").blocked_countries == [
        "AT", "DE"]
    assert await ids(a, country="DE") == ["reelhouse:fruit-classic", "reelhouse:lucky-sevens", *ALL[3:]]
    assert await ids(a, country="us") == ALL[:3]
    assert await ids(a, country="FR") == ALL
    assert await ids(a) == ALL  # no country asked: nothing hidden
    assert await ids(b, country="DE") == ALL
    await refused(launch("reelhouse:gem-rush", "DE"), "GAME_BLOCKED_IN_COUNTRY", grpc.StatusCode.FAILED_PRECONDITION)
    await refused(launch("tablehouse:european-roulette", "US"), "GAME_BLOCKED_IN_COUNTRY",
                  grpc.StatusCode.FAILED_PRECONDITION)
    await refused(launch("reelhouse:gem-rush"), "COUNTRY_REQUIRED")
    await refused(launch("reelhouse:gem-rush", "D"), "INVALID_ARGUMENT")
    await launch("reelhouse:gem-rush", "fr")
    await launch("reelhouse:fruit-classic")  # nothing blocked for this game: no country needed
    await live.admin.SetBlockedCountries(admin_pb.SetBlockedCountriesRequest(
        operator_id=a.operator_id, game_id="reelhouse:gem-rush"), metadata=ADMIN)
    await launch("reelhouse:gem-rush", "DE")
    for bad in (admin_pb.SetBlockedCountriesRequest(operator_id=a.operator_id, countries=["DE"]),
                admin_pb.SetBlockedCountriesRequest(operator_id=a.operator_id, studio="reelhouse",
                                                    game_id="reelhouse:gem-rush", countries=["DE"]),
                admin_pb.SetBlockedCountriesRequest(operator_id=a.operator_id, studio="reelhouse",
                                                    countries=["D1"]),
                admin_pb.SetBlockedCountriesRequest(operator_id=a.operator_id, studio="reelhouse",
                                                    countries=["DE", ""]),
                admin_pb.SetBlockedCountriesRequest(operator_id=a.operator_id, studio="reelhouse", countries=[
                    x + y for x in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for y in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"][:251])):
        await refused(live.admin.SetBlockedCountries(bad, metadata=ADMIN), "INVALID_ARGUMENT")
    await refused(live.admin.SetBlockedCountries(admin_pb.SetBlockedCountriesRequest(
        operator_id=a.operator_id, game_id="reelhouse:nope", countries=["DE"]), metadata=ADMIN),
        "GAME_NOT_FOUND", grpc.StatusCode.NOT_FOUND)


async def test_the_operators_rtp_variant_reaches_the_studio(live: Live) -> None:
    a, b = live.hub, await live.other_operator()
    answer = await live.admin.SetRtpVariant(admin_pb.SetRtpVariantRequest(
        operator_id=a.operator_id, game_id="reelhouse:fruit-classic", variant="94"), metadata=ADMIN)
    assert next(g for g in answer.settings.games if g.game_id == "reelhouse:fruit-classic").rtp_variant == "94"
    a_fruit = (await listed(a, text="fruit"))[0]
    b_fruit = (await listed(b, text="fruit"))[0]
    assert (a_fruit.rtp_variant, a_fruit.rtp_basis_points) == ("94", 9401)
    assert (b_fruit.rtp_variant, b_fruit.rtp_basis_points) == ("96", 9614)
    player_id, token = await a.new_player(deposit=10_000)
    stream = await opened_stream(a, token, "reelhouse:fruit-classic")
    stream.bet(100, "variant-bet")
    events = await stream.until("settled", "error")
    assert kinds(events)[-1] == "settled"
    await stream.close()
    (session,) = [s for s in live.reelhouse.sessions.values() if s.player_id == player_id]
    assert session.rtp_variant == "94"
    (round_,) = [answer for request, answer in live.reelhouse.rounds.values() if request["player_id"] == player_id]
    assert round_["rtp_variant"] == "94"
    _, b_player_token = await b.new_player()
    b_session = await b.games.LaunchGame(pb.LaunchGameRequest(
        session_token=b_player_token, game_id="reelhouse:fruit-classic", currency="USD"), metadata=b.metadata)
    assert live.reelhouse.sessions[b_session.game_session_id].rtp_variant == "96"
    await refused(live.admin.SetRtpVariant(admin_pb.SetRtpVariantRequest(
        operator_id=a.operator_id, game_id="reelhouse:fruit-classic", variant="99"), metadata=ADMIN),
        "RTP_VARIANT_NOT_OFFERED")
    await refused(live.admin.SetRtpVariant(admin_pb.SetRtpVariantRequest(
        operator_id=a.operator_id, game_id="reelhouse:gem-rush", variant="94"), metadata=ADMIN),
        "RTP_VARIANT_NOT_OFFERED")
    await live.admin.SetRtpVariant(admin_pb.SetRtpVariantRequest(
        operator_id=a.operator_id, game_id="reelhouse:fruit-classic"), metadata=ADMIN)
    assert (await listed(a, text="fruit"))[0].rtp_variant == "96"


async def until_listed(hub: Client, expected: list[str], within_s: float = 3.0) -> float:
    """Seconds until ListGames shows exactly `expected` (health is re-checked in the background)."""
    started = time.monotonic()
    while (found := await ids(hub)) != expected:
        assert time.monotonic() - started < within_s, found
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_an_unhealthy_studio_leaves_the_catalog_and_comes_back(live: Live) -> None:
    hub = live.hub
    _, token = await hub.new_player()
    assert await ids(hub) == ALL
    live.reelhouse.faults.unhealthy = 1
    await until_listed(hub, ALL[3:])  # studio_health_ttl_s is 0.1 s here
    await refused(hub.games.LaunchGame(pb.LaunchGameRequest(session_token=token, game_id="reelhouse:gem-rush",
                                                            currency="USD"), metadata=hub.metadata),
                  "STUDIO_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE)
    settings = await live.admin.GetCatalogSettings(admin_pb.GetCatalogSettingsRequest(operator_id=hub.operator_id),
                                                   metadata=ADMIN)
    assert [(s.studio, s.healthy) for s in settings.settings.studios] == [("reelhouse", False), ("tablehouse", True)]
    live.reelhouse.faults.unhealthy = 0
    await until_listed(hub, ALL)
    await hub.games.LaunchGame(pb.LaunchGameRequest(session_token=token, game_id="reelhouse:gem-rush",
                                                    currency="USD"), metadata=hub.metadata)


async def test_a_change_through_one_hub_process_reaches_another_within_the_ttl(live: Live,
                                                                                database_url: str) -> None:
    """Two hubs on one database (as two processes would be): hub 2 caches the operator's settings for
    catalog_settings_ttl_s (0.5 s here), then sees hub 1's change."""
    one = live.hub
    two = await start_hub(database_url, None, providers=live.providers, admin_token=ADMIN_TOKEN,
                          sandbox_operator_id=one.operator_id, catalog_settings_ttl_s=0.5)
    try:
        two = dataclasses.replace(two, operator_id=one.operator_id)
        assert await ids(two) == ALL  # cached now
        await live.admin.SetStudioEnabled(admin_pb.SetStudioEnabledRequest(
            operator_id=one.operator_id, studio="tablehouse", enabled=False), metadata=ADMIN)
        changed_at = time.monotonic()
        assert await ids(one) == ALL[:3]  # the changing process at once
        while await ids(two) != ALL[:3]:
            assert time.monotonic() - changed_at < 2.0, "hub 2 never saw the change"
            await asyncio.sleep(0.05)
        assert time.monotonic() - changed_at <= 0.5 + 0.5  # the TTL, plus a generous margin for a loaded CI box
    finally:
        await two.channel.close()
        await two.server.stop(grace=1)
