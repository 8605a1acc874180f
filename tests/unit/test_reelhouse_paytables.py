"""Reelhouse paytables: published RTPs are exact; the hub's own evaluation agrees with the studio's."""

import math
from itertools import product

import pytest

from adapters.base import ProviderProtocolError
from adapters.reelhouse.paytable import Paytable
from mock_providers.reelhouse.games import GAMES


def hub_paytable(game_id: str) -> Paytable:
    published = GAMES[game_id].to_json()
    return Paytable.from_catalog(published["reels"], published["paytable"])


@pytest.mark.parametrize("game_id", sorted(GAMES))
def test_published_rtp_is_the_enumerated_rtp_rounded_down(game_id):
    game = GAMES[game_id]
    assert game.rtp_basis_points == math.floor(game.theoretical_rtp() * 10_000)
    assert 9200 <= game.rtp_basis_points <= 9700


def test_games_differ():
    assert len(GAMES) >= 3
    assert len({g.rtp_basis_points for g in GAMES.values()}) == len(GAMES)
    assert len({(g.reels, tuple(g.three_of_a_kind.items())) for g in GAMES.values()}) == len(GAMES)


@pytest.mark.parametrize("game_id", sorted(GAMES))
def test_hub_and_studio_pay_every_line_alike_and_max_win_is_reachable(game_id):
    game, hub = GAMES[game_id], hub_paytable(game_id)
    paid = set()
    for line in product(*game.reels):
        studio_pays = game.multiplier(list(line))
        assert hub.multiplier(list(line)) == studio_pays, line
        paid.add(studio_pays)
    assert max(paid) == game.max_win_multiplier


@pytest.mark.parametrize(("line", "multiplier"), [
    ("SEVEN SEVEN SEVEN", 150),
    ("CHERRY CHERRY CHERRY", 25),  # three of a kind beats "any two cherries"
    ("CHERRY LEMON CHERRY", 5),
    ("LEMON BAR CHERRY", 1),
    ("LEMON LEMON BLANK", 0),
])
def test_fruit_classic_lines(line, multiplier):
    assert hub_paytable("fruit-classic").multiplier(line.split()) == multiplier
    assert GAMES["fruit-classic"].multiplier(line.split()) == multiplier


def test_stops_off_the_reels_are_a_protocol_error():
    hub = hub_paytable("gem-rush")
    with pytest.raises(ProviderProtocolError):
        hub.symbols_at([0, 0, 34])
    with pytest.raises(ProviderProtocolError):
        hub.symbols_at([0, 0])


@pytest.mark.parametrize("paytable", [
    {"three_of_a_kind": {"SEVEN": -5}, "any": []},
    {"three_of_a_kind": {"SEVEN": 1.5}, "any": []},
    {"three_of_a_kind": {}, "any": [{"symbol": "CHERRY", "count": 1}]},
    {"any": []},
])
def test_malformed_paytables_are_a_protocol_error(paytable):
    with pytest.raises(ProviderProtocolError):
        Paytable.from_catalog([["A"], ["A"], ["A"]], paytable)


VARIANTS = [(game_id, v.variant_id) for game_id, g in sorted(GAMES.items()) for v in g.variants]


def test_at_least_one_game_runs_at_two_rtp_variants():
    assert VARIANTS, "the mock must offer a game with several RTP variants"


@pytest.mark.parametrize(("game_id", "variant_id"), VARIANTS)
def test_each_variant_publishes_its_enumerated_rtp_and_the_hub_reads_its_paytable(game_id, variant_id):
    game = GAMES[game_id].at_variant(variant_id)
    assert game.rtp_basis_points == math.floor(game.theoretical_rtp() * 10_000)
    assert game.rtp_basis_points != GAMES[game_id].rtp_basis_points
    published = next(v for v in GAMES[game_id].to_json()["rtp_variants"] if v["variant"] == variant_id)
    assert published["rtp_basis_points"] == game.rtp_basis_points
    hub = Paytable.from_catalog(GAMES[game_id].to_json()["reels"], published["paytable"])
    for line in product(*game.reels):
        assert hub.multiplier(list(line)) == game.multiplier(list(line)), line
