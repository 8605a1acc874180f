"""The adapter conformance kit: every registered adapter, created through its entry point as the hub creates
it, against its own mock studio. An adapter is done when it passes every test here (see README "Writing an
adapter"). Tests a studio cannot take part in (no multi-step games) skip with the reason."""

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from adapters import registry
from adapters.base import (
    ActionInput,
    AmountNotRepresentable,
    CatalogInput,
    GameInfo,
    LaunchInput,
    MultiStepAdapter,
    PlayInput,
    PlayResult,
    ProviderAdapter,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RoundStatusInput,
)
from casinohub.v1 import game_service_pb2 as gpb
from tests.conformance.studios import STUDIOS, Game, StudioUnderTest, config
from tests.e2e.play_client import PlayStream, kinds
from tests.support import start_hub

OPERATOR, PLAYER = "op-kit", "p-kit"


class Kit:
    """One studio and its adapter, with the steps every test takes."""

    def __init__(self, studio: StudioUnderTest, url: str):
        self.studio, self.url = studio, url
        self.adapter = registry.create(studio.adapter, config(studio, url))
        self.games: dict[str, GameInfo] = {}

    async def launch(self, game: Game, session_id: str | None = None, currency: str | None = None) -> str:
        session_id = session_id or f"gs-{uuid.uuid4().hex[:12]}"
        self.games = self.games or {g.provider_game_id: g for g in await self.adapter.catalog(CatalogInput())}
        await self.adapter.launch(LaunchInput(session_id, game.game_id, OPERATOR, PLAYER, currency or game.currency,
                                              client_seed="kit"))
        return session_id

    def spin(self, game: Game, session_id: str, round_id: str | None = None, bet_minor: int | None = None,
             currency: str | None = None, multi_step: bool = False) -> PlayInput:
        return PlayInput(round_id=round_id or str(uuid.uuid4()), game_session_id=session_id,
                         provider_game_id=game.game_id, operator_id=OPERATOR, player_id=PLAYER,
                         currency=currency or game.currency, bet_minor=bet_minor or game.bet_minor,
                         params=game.params, multi_step=multi_step)

    async def status(self, round_id: str) -> tuple[str, int]:
        found = await self.adapter.round_status(RoundStatusInput(round_id, OPERATOR))
        return found.status, found.win_minor


@pytest.fixture(params=sorted(STUDIOS))
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    studio = STUDIOS[request.param]()
    url = await studio.start()
    kit = Kit(studio, url)
    yield kit
    await kit.adapter.close()
    await studio.stop()


async def test_the_adapter_is_registered_by_entry_point_and_speaks_the_protocol(kit: Kit) -> None:
    assert kit.studio.adapter in registry.available()
    assert isinstance(kit.adapter, ProviderAdapter)
    assert kit.adapter.name == kit.studio.adapter
    assert await kit.adapter.health() is True


async def test_the_catalog_is_in_hub_minor_units_with_sane_figures(kit: Kit) -> None:
    games = await kit.adapter.catalog(CatalogInput())
    assert games and len({g.provider_game_id for g in games}) == len(games)
    assert kit.studio.single_step.game_id in {g.provider_game_id for g in games}
    for game in games:
        assert 1 <= game.rtp_basis_points <= 10_000 and game.max_win_multiplier >= 1, game
        assert game.bet_limits, game
        for limit in game.bet_limits:
            assert re.fullmatch(r"[A-Z]{3,5}", limit.currency), limit
            assert 0 < limit.min_minor <= limit.max_minor and limit.step_minor >= 1, limit
            assert limit.min_minor % limit.step_minor == 0, limit


async def test_launch_commits_to_a_server_seed_and_a_repeat_is_the_same_session(kit: Kit) -> None:
    game = kit.studio.single_step
    await kit.launch(game)
    request = LaunchInput("gs-kit-launch", game.game_id, OPERATOR, PLAYER, game.currency, client_seed="kit")
    first, again = await kit.adapter.launch(request), await kit.adapter.launch(request)
    assert re.fullmatch(r"[0-9a-f]{64}", first.server_seed_hash) and first.launch_url
    assert again == first


async def test_a_demo_launch_plays_a_real_round_with_fun_money_and_writes_no_money(kit: Kit, database_url: str) -> None:
    """Through a hub, as an operator launches it (LaunchGame demo=true, anonymous): the studio plays the round,
    the fun balance moves by its stake and win, and the ledger gets not one row."""
    hub = await start_hub(database_url, {kit.studio.adapter: kit.adapter})
    try:
        game = kit.studio.single_step
        before = hub.ledger_counts()
        launched = await hub.games.LaunchGame(gpb.LaunchGameRequest(
            game_id=f"{kit.studio.adapter}:{game.game_id}", currency=game.currency, demo=True), metadata=hub.metadata)
        assert launched.demo and launched.launch_url
        fun, seen = launched.demo_balance.amount_minor, kit.studio.calls_seen()
        stream = PlayStream(hub)
        stream.open(launched.game_session_id, "")
        assert (await stream.next()).session_opened.balance.amount_minor == fun
        stream.bet(game.bet_minor, "demo-1", game.currency)
        events = await stream.until("settled", "error")
        await stream.close()
        assert kinds(events)[-1] == "settled", events[-1]
        settled = events[-1].settled
        assert settled.balance.amount_minor == fun - game.bet_minor + settled.win.amount_minor
        assert kit.studio.calls_seen() > seen  # a real round at the studio
        assert hub.ledger_counts() == before
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)


async def test_winning_and_losing_rounds_pay_within_the_rules_and_match_the_studios_record(kit: Kit) -> None:
    game = kit.studio.single_step
    session = await kit.launch(game)
    info = kit.games[game.game_id]
    wins: list[PlayResult] = []
    losses: list[PlayResult] = []
    for _ in range(200):  # fair games: both come long before this
        spin = kit.spin(game, session)
        result = await kit.adapter.play(spin)
        assert result.finished and 0 <= result.win_minor <= spin.bet_minor * info.max_win_multiplier, result
        assert await kit.status(spin.round_id) == ("settled", result.win_minor)
        (wins if result.win_minor else losses).append(result)
        if wins and losses:
            break
    assert wins and losses, (len(wins), len(losses))


async def test_a_multi_step_round_runs_to_its_end_and_the_stake_only_grows(kit: Kit) -> None:
    game = kit.studio.multi_step
    if game is None:
        pytest.skip(f"{kit.studio.adapter} has no multi-step games")
    assert isinstance(kit.adapter, MultiStepAdapter)
    session = await kit.launch(game)
    spin = kit.spin(game, session, multi_step=True)
    step = await kit.adapter.play(spin)
    stake = step.stake_minor or spin.bet_minor
    while not step.finished:
        assert step.actions, step
        option = step.actions[0]
        assert await kit.status(spin.round_id) == ("in_progress", 0)
        step = await kit.adapter.act(ActionInput(
            round_id=spin.round_id, game_session_id=session, provider_game_id=game.game_id, operator_id=OPERATOR,
            player_id=PLAYER, currency=game.currency, step=step.step + 1, action=option.action,
            extra_stake_minor=option.extra_stake_minor))
        assert (step.stake_minor or stake) >= stake
        stake = step.stake_minor or stake
    assert (await kit.status(spin.round_id))[0] == "settled"


async def test_a_repeated_step_answers_the_same_and_a_staking_action_adds_exactly_its_stake(kit: Kit) -> None:
    """What the hub's Play relies on for acts: a step asked again (its answer was lost) is answered the same,
    without a second draw, and an action's extra_stake_minor is exactly what it adds to the round's stake."""
    game = kit.studio.multi_step
    if game is None:
        pytest.skip(f"{kit.studio.adapter} has no multi-step games")
    assert isinstance(kit.adapter, MultiStepAdapter)
    session = await kit.launch(game)
    for _ in range(50):  # a deal that waits for the player comes long before this
        spin = kit.spin(game, session, multi_step=True)
        step = await kit.adapter.play(spin)
        if not step.finished:
            break
    assert not step.finished and step.actions, step
    option = max(step.actions, key=lambda o: o.extra_stake_minor)  # double or split when offered
    assert option.extra_stake_minor > 0, step.actions
    action = ActionInput(round_id=spin.round_id, game_session_id=session, provider_game_id=game.game_id,
                         operator_id=OPERATOR, player_id=PLAYER, currency=game.currency, step=step.step + 1,
                         action=option.action, extra_stake_minor=option.extra_stake_minor)
    first = await kit.adapter.act(action)
    assert await kit.adapter.act(action) == first
    assert first.stake_minor == (step.stake_minor or spin.bet_minor) + option.extra_stake_minor


async def test_a_duplicate_delivery_returns_the_same_outcome_once(kit: Kit) -> None:
    game = kit.studio.single_step
    session = await kit.launch(game)
    spin = kit.spin(game, session)
    first = await kit.adapter.play(spin)
    again = await kit.adapter.play(spin)
    together = await asyncio.gather(*(kit.adapter.play(spin) for _ in range(5)))
    assert again == first and all(r == first for r in together)
    assert await kit.status(spin.round_id) == ("settled", first.win_minor)


async def test_a_round_id_reused_for_another_bet_is_refused(kit: Kit) -> None:
    game = kit.studio.single_step
    session = await kit.launch(game)
    spin = kit.spin(game, session)
    await kit.adapter.play(spin)
    with pytest.raises(ProviderRejected):
        await kit.adapter.play(kit.spin(game, session, round_id=spin.round_id, bet_minor=spin.bet_minor * 2))


async def test_a_timeout_leaves_an_outcome_the_studios_record_resolves(kit: Kit) -> None:
    game = kit.studio.single_step
    session = await kit.launch(game)
    spin = kit.spin(game, session)
    kit.studio.fail_next("timeout")  # the studio plays the round, then does not answer
    with pytest.raises(ProviderTimeout) as timed_out:
        await kit.adapter.play(spin)
    assert not timed_out.value.retryable  # its outcome is unknown: the reconciler asks, nobody retries blindly
    status, win = await kit.status(spin.round_id)
    assert status == "settled" and win >= 0


async def test_a_studio_error_is_unavailable_retryable_and_nothing_happened(kit: Kit) -> None:
    game = kit.studio.single_step
    session = await kit.launch(game)
    spin = kit.spin(game, session)
    kit.studio.fail_next("error")
    with pytest.raises(ProviderUnavailable) as failed:
        await kit.adapter.play(spin)
    assert failed.value.retryable
    assert await kit.status(spin.round_id) == ("unknown", 0)
    assert (await kit.adapter.play(spin)).finished  # the retry with the same round id plays it


async def test_an_untrustworthy_answer_is_a_protocol_error(kit: Kit) -> None:
    game = kit.studio.single_step
    session = await kit.launch(game)
    assert kit.studio.forge_next_answer()
    with pytest.raises(ProviderProtocolError):
        await kit.adapter.play(kit.spin(game, session))


async def test_a_wrong_secret_is_refused(kit: Kit) -> None:
    stranger = registry.create(kit.studio.adapter, config(kit.studio, kit.url, secret="not-the-studio-secret"))
    try:
        with pytest.raises(ProviderRejected):
            await stranger.catalog(CatalogInput())
    finally:
        await stranger.close()


async def test_amounts_convert_exactly_or_are_refused_before_the_studio_hears_of_them(kit: Kit) -> None:
    game = kit.studio.single_step
    (currency, exact), (inexact_currency, inexact) = kit.studio.exact, kit.studio.inexact
    session = await kit.launch(game, currency=currency)
    seen = kit.studio.calls_seen()
    with pytest.raises(AmountNotRepresentable):
        await kit.adapter.play(kit.spin(game, session, bet_minor=inexact, currency=inexact_currency))
    assert kit.studio.calls_seen() == seen
    result = await kit.adapter.play(kit.spin(game, session, bet_minor=exact, currency=currency))
    assert result.win_minor >= 0 and isinstance(result.win_minor, int)


async def test_nothing_listening_is_unavailable(kit: Kit) -> None:
    await kit.studio.stop()
    try:
        with pytest.raises(ProviderError) as failed:
            await kit.adapter.catalog(CatalogInput())
        assert isinstance(failed.value, ProviderUnavailable)
    finally:
        kit.url = await kit.studio.start()  # the fixture stops it again
