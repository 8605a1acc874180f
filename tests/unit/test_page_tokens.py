"""Page tokens are opaque and tamper-evident: only the query that issued one can read it."""

import dataclasses

import pytest

from hub.catalog import Catalog, GameQuery
from hub.errors import DomainError, Reason
from hub.page_tokens import PageTokens
from tests.fakes import FAKE_GAME, FakeStudio

TOKENS = PageTokens(b"k" * 32)


class ManyGames(FakeStudio):
    async def catalog(self, request):  # type: ignore[no-untyped-def]
        return [dataclasses.replace(FAKE_GAME, provider_game_id=f"game-{i}") for i in range(5)]


def refused(token: str, query: tuple[str, ...] = ("L", "op")) -> None:
    with pytest.raises(DomainError) as err:
        TOKENS.read(token, query)
    assert err.value.reason is Reason.INVALID_PAGE_TOKEN


def test_a_token_reads_back_only_with_its_own_query() -> None:
    token = TOKENS.issue(("L", "op"), ["cursor", 7])
    assert TOKENS.read(token, ("L", "op")) == ["cursor", 7]
    refused(token, ("L", "other-op"))
    refused(token, ("Other", "op"))
    assert PageTokens(b"x" * 32).issue(("L", "op"), ["cursor", 7]) != token  # a different hub's key


@pytest.mark.parametrize("token", ["", "%%%", "AAAA", "x" * 500, "Y3Vyc29y"])
def test_garbage_is_refused(token: str) -> None:
    refused(token)


def test_every_edit_is_detected() -> None:
    token = TOKENS.issue(("L", "op"), ["cursor", 7])
    for i, char in enumerate(token):
        for other in {char.upper(), char.lower(), "A" if char != "A" else "B"} - {char}:
            refused(token[:i] + other + token[i + 1:])


async def test_list_games_pages_through_and_refuses_foreign_tokens() -> None:
    catalog = Catalog({"fake": ManyGames()}, TOKENS)
    games, first_token = await catalog.list(operator_id="op", query=GameQuery(), page_size=2, page_token="")
    seen, token = [g.game.game_id for g in games], first_token
    while token:
        games, token = await catalog.list(operator_id="op", query=GameQuery(), page_size=2, page_token=token)
        seen += [g.game.game_id for g in games]
    assert seen == [f"fake:game-{i}" for i in range(5)]
    with pytest.raises(DomainError) as err:
        await catalog.list(operator_id="other", query=GameQuery(), page_size=2, page_token=first_token)
    assert err.value.reason is Reason.INVALID_PAGE_TOKEN
    # Every filter is part of the query a token is bound to.
    for change in ({"currency": "USD"}, {"provider": "fake"}, {"game_type": "slot"}, {"features": ("jackpot",)},
                   {"text": "game"}, {"locale": "de"}, {"country": "DE"}):
        with pytest.raises(DomainError) as err:
            await catalog.list(operator_id="op", query=GameQuery(**change),  # type: ignore[arg-type]
                               page_size=2, page_token=first_token)
        assert err.value.reason is Reason.INVALID_PAGE_TOKEN, change
