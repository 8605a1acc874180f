"""The catalog without a network: locale fallback, variants, query validation, and health that never
slows a listing (the e2e tests in tests/e2e/test_catalog.py drive the same through both live studios)."""

import asyncio
import dataclasses
import time

import pytest

from adapters.base import RtpVariant
from hub.catalog import Catalog, GameQuery
from hub.errors import DomainError, Reason
from hub.page_tokens import PageTokens
from hub.studio_guard import Breaker, GuardedAdapter, GuardPolicy
from tests.fakes import FAKE_GAME, FakeStudio

GAME = dataclasses.replace(FAKE_GAME, names={"de": "Münzwurf", "pt-BR": "Cara ou Coroa"}, features=("jackpot",),
                           rtp_variants=(RtpVariant("95", 9500), RtpVariant("92", 9200)))


@pytest.mark.parametrize(("locale", "name", "used"), [
    ("", "Coin Flip", "en"), ("en", "Coin Flip", "en"), ("de", "Münzwurf", "de"), ("de-CH", "Münzwurf", "de"),
    ("DE", "Münzwurf", "de"), ("pt-br", "Cara ou Coroa", "pt-BR"), ("pt", "Coin Flip", "en"),
    ("ja", "Coin Flip", "en")])
def test_a_name_falls_back_to_its_language_then_to_english(locale: str, name: str, used: str) -> None:
    assert (GAME.name_in(locale), GAME.locale_of(locale)) == (name, used)


def test_variants_default_first_and_unknown_ones_are_none() -> None:
    assert GAME.variant("") == RtpVariant("95", 9500)
    assert GAME.variant("92") == RtpVariant("92", 9200)
    assert GAME.variant("97") is None
    assert FAKE_GAME.variant("") == RtpVariant("", 9500) and FAKE_GAME.variant("95") is None


@pytest.mark.parametrize("query", [
    GameQuery(locale="e"), GameQuery(locale="en_US"), GameQuery(locale="en-"), GameQuery(locale="a" * 36),
    GameQuery(locale="1e"), GameQuery(features=("jackpot",) * 9), GameQuery(features=("free money",)),
    GameQuery(country="DEU"), GameQuery(country="1A"), GameQuery(text="x" * 65)])
def test_malformed_queries_are_refused(query: GameQuery) -> None:
    with pytest.raises(DomainError) as err:
        query.checked()
    assert err.value.reason is Reason.INVALID_ARGUMENT


def test_a_query_is_normalized_so_equal_filters_share_page_tokens() -> None:
    checked = GameQuery(features=("jackpot", "bonus_buy", "jackpot"), locale="DE-at", country="de").checked()
    assert (checked.features, checked.locale, checked.country) == (("bonus_buy", "jackpot"), "de-at", "DE")


class HangingHealth(FakeStudio):
    """Healthy at first; then every health check hangs (a studio that stopped answering)."""

    checks: int = 0

    async def catalog(self, request):  # type: ignore[no-untyped-def]
        return [GAME]

    async def health(self) -> bool:
        self.checks += 1
        if self.checks > 1:
            await asyncio.sleep(30)
        return True


async def test_a_hanging_health_check_never_slows_a_listing_and_then_takes_the_studio_out(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("hub.catalog.HEALTH_PROBE_S", 0.3)
    studio = HangingHealth()
    catalog = Catalog({"fake": studio}, PageTokens(b"k" * 32), health_ttl_s=0.05)
    assert len((await catalog.list(operator_id="op", query=GameQuery(), page_size=0, page_token=""))[0]) == 1
    await asyncio.sleep(0.06)
    started = time.monotonic()
    listed, _ = await catalog.list(operator_id="op", query=GameQuery(), page_size=0, page_token="")
    assert time.monotonic() - started < 0.2 and len(listed) == 1  # the stale answer, at once
    await asyncio.sleep(0.4)  # the background check timed out: unhealthy
    assert (await catalog.list(operator_id="op", query=GameQuery(), page_size=0, page_token=""))[0] == []
    with pytest.raises(DomainError) as err:
        await catalog.offer("op", "fake:coin-flip", "")
    assert err.value.reason is Reason.STUDIO_UNAVAILABLE


async def test_filters_locale_and_variant_in_one_listing() -> None:
    catalog = Catalog({"fake": FakeStudio()}, PageTokens(b"k" * 32))
    catalog.adapters["fake"].catalog = lambda request: _games()  # type: ignore[method-assign]
    listed, _ = await catalog.list(operator_id="op", query=GameQuery(features=("jackpot",), locale="de", text="münz"),
                                   page_size=0, page_token="")
    assert [(g.game.game_id, g.name, g.locale, g.rtp_variant, g.rtp_basis_points) for g in listed] == [
        ("fake:coin-flip", "Münzwurf", "de", "95", 9500)]
    assert (await catalog.list(operator_id="op", query=GameQuery(features=("bonus_buy",)), page_size=0,
                               page_token=""))[0] == []


async def _games():  # type: ignore[no-untyped-def]
    return [GAME]


async def test_a_studio_whose_circuit_is_open_leaves_the_catalog_until_it_may_be_probed() -> None:
    clock = [0.0]
    guarded = GuardedAdapter(FakeStudio(), GuardPolicy(attempts=1, backoff_s=0, failures_to_open=1, open_s=10))
    guarded.breaker = Breaker(1, 10, clock=lambda: clock[0])
    catalog = Catalog({"fake": guarded}, PageTokens(b"k" * 32), health_ttl_s=0)

    async def listed() -> list[str]:
        await catalog._check_health()  # what the background check does
        return [g.game.game_id for g in (await catalog.list(operator_id="op", query=GameQuery(), page_size=0,
                                                            page_token=""))[0]]

    assert await listed() == ["fake:coin-flip"]
    guarded.breaker.failed()  # one failure opens it
    assert await listed() == []
    clock[0] = 10.0  # past open_s: the next call may probe the studio, so its games are offered again
    assert await listed() == ["fake:coin-flip"]


def test_a_studio_name_with_a_colon_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError):
        Catalog({"re:el": FakeStudio()}, PageTokens(b"k" * 32))
