"""Tablehouse's games: roulette and blackjack payouts against worked examples, their theoretical RTPs, and
the published provably-fair vectors."""

import hashlib
import hmac
import json
import math
import random
from fractions import Fraction
from pathlib import Path

import pytest

from mock_providers.tablehouse import blackjack as bj, blackjack_rtp, fairness, roulette
from mock_providers.tablehouse.games import BLACKJACK, GAMES, ROULETTE

VECTORS = json.loads((Path(fairness.__file__).parent / "test_vectors.json").read_text())


def cards(*names: str) -> list[int]:
    return [bj.RANKS.index(n[0]) + 13 * bj.SUITS.index(n[1]) for n in names]


def deal(*names: str, stake: int = 100) -> bj.Table:
    """A table dealt from exactly these cards in dealing order: player, dealer up, player, hole, then draws."""
    return bj.Table.deal(stake, iter(cards(*names)))


# --- roulette -------------------------------------------------------------------------------------------


def test_roulette_pays_the_european_table():
    assert roulette.PAYS_TO_ONE == {"straight": 35, "split": 17, "street": 11, "corner": 8, "line": 5,
                                    "dozen": 2, "column": 2, "red": 1, "black": 1, "odd": 1, "even": 1,
                                    "low": 1, "high": 1}
    counts = {kind: len(sets) for kind, sets in roulette.VALID_BETS.items()}
    assert (counts["straight"], counts["split"], counts["street"], counts["corner"], counts["line"]) == (
        37, 60, 14, 23, 11)  # splits: 24 across, 33 down, 0-1 0-2 0-3; streets and corners with 0 included


def test_roulette_worked_example_several_bets_on_17():
    layout = [({17}, 100), ({17, 20}, 50), ({16, 17, 18}, 30), ({13, 14, 16, 17}, 20), (set(range(13, 19)), 60),
              (set(range(13, 25)), 40), (set(range(2, 37, 3)), 10), (roulette.BLACK, 200), (roulette.RED, 100),
              (set(range(1, 37, 2)), 80), (set(range(1, 19)), 70), ({0}, 10)]
    stake = sum(amount for _, amount in layout)
    paid = sum(roulette.returned(frozenset(numbers), amount, 17) for numbers, amount in layout)
    # 100*36 + 50*18 + 30*12 + 20*9 + 60*6 + 40*3 + 10*3 + 200*2 + 80*2 + 70*2; red and zero lose
    assert paid == 3600 + 900 + 360 + 180 + 360 + 120 + 30 + 400 + 160 + 140 == 6250
    assert stake == 770
    assert roulette.colour(17) == "BLACK" and roulette.colour(0) == "GREEN" and roulette.colour(1) == "RED"


def test_zero_loses_the_outside_bets_and_pays_the_inside_bets_that_cover_it():
    for kind in ("dozen", "column", "red", "black", "odd", "even", "low", "high"):
        assert all(roulette.returned(numbers, 100, 0) == 0 for numbers in roulette.VALID_BETS[kind])
    assert roulette.returned(frozenset({0, 1, 2, 3}), 100, 0) == 900
    assert roulette.returned(frozenset({0, 2, 3}), 100, 0) == 1200


@pytest.mark.parametrize("kind", sorted(roulette.VALID_BETS))
def test_every_roulette_bet_has_rtp_36_over_37_exactly(kind):
    assert roulette.theoretical_rtp(kind) == Fraction(36, 37)


def test_published_roulette_rtp_is_36_over_37():
    assert GAMES[ROULETTE].rtp_basis_points == round(Fraction(36, 37) * 10_000) == 9730


def test_fair_pockets_are_uniform_and_return_36_over_37():
    """37,000 provably-fair spins of 1 on red: a chi-square test of the pockets (36 d.o.f., p ~ 0.001 at 67)
    and the measured RTP within 4 standard errors (sd of an even-money bet ~ 1) of 36/37."""
    n = 37_000
    seed = "ab" * 32
    pockets = [fairness.pocket(seed, "monte-carlo", nonce) for nonce in range(n)]
    expected = n / 37
    assert sum((pockets.count(p) - expected) ** 2 / expected for p in range(37)) < 67
    rtp = sum(roulette.returned(roulette.RED, 1, p) for p in pockets) / n
    assert abs(rtp - 36 / 37) < 4 / math.sqrt(n)


def test_invalid_layouts_are_not_bets():
    assert not roulette.is_valid("split", frozenset({3, 4}))  # not adjacent on the layout
    assert not roulette.is_valid("corner", frozenset({3, 4, 6, 7}))
    assert not roulette.is_valid("line", frozenset(range(2, 8)))
    assert roulette.is_valid("split", frozenset({0, 2})) and roulette.is_valid("street", frozenset({34, 35, 36}))


# --- blackjack ------------------------------------------------------------------------------------------


def test_blackjack_pays_3_to_2_at_once():
    table = deal("AS", "9H", "KD", "7C", stake=100)
    assert table.finished and table.actions() == []
    assert table.returned() == 250


def test_blackjack_against_dealer_blackjack_pushes_and_dealer_peek_ends_the_round():
    assert deal("AS", "AH", "KD", "QC").returned() == 100
    peeked = deal("TS", "AH", "QD", "KC")  # 20 against a dealer blackjack: lost before any action
    assert peeked.finished and peeked.returned() == 0 and peeked.total_stake == 100


def test_stand_win_push_and_loss():
    win = deal("TS", "9H", "QD", "7C", "6S")  # 20 v 16, dealer draws a 6: 22
    win.act(bj.STAND)
    assert win.returned() == 200
    pushed = deal("TS", "TH", "QD", "KC")
    pushed.act(bj.STAND)
    assert pushed.returned() == 100
    lost = deal("TS", "TH", "7D", "KC")
    lost.act(bj.STAND)
    assert lost.returned() == 0


def test_dealer_draws_to_16_and_stands_on_soft_17():
    table = deal("TS", "6H", "9D", "TC", "AH")  # dealer 16 draws an ace: hard 17, stands
    table.act(bj.STAND)
    assert [bj.card_name(c) for c in table.dealer] == ["6H", "TC", "AH"] and table.returned() == 200
    soft = deal("TS", "AH", "6D", "6C")  # 16 v A-6: soft 17 stands at once
    soft.act(bj.STAND)
    assert len(soft.dealer) == 2 and soft.returned() == 0


def test_player_bust_loses_even_when_the_dealer_busts():
    table = deal("TS", "6H", "6D", "TC", "KH", "9S")
    table.act(bj.HIT)  # 26: bust, the round ends without the dealer drawing
    assert table.finished and len(table.dealer) == 2 and table.returned() == 0


def test_double_takes_one_card_and_doubles_the_stake():
    table = deal("5S", "6H", "6D", "TC", "TH", "9S")  # 11 v 6; double draws a ten: 21; dealer 16 + 9 = 25
    assert table.extra_stake(bj.DOUBLE) == 100
    table.act(bj.DOUBLE)
    assert table.finished and table.total_stake == 200 and table.hands[0].doubled
    assert table.returned() == 400


def test_split_then_double_then_stand():
    # 8-8 v 6: split; hand 1 gets 3 (11) and doubles onto a ten (21); hand 2 gets a ten (18), stands.
    table = deal("8S", "6H", "8D", "TC", "3H", "KS", "TD", "7C")
    assert table.actions() == [bj.HIT, bj.STAND, bj.DOUBLE, bj.SPLIT]
    table.act(bj.SPLIT)
    assert table.total_stake == 200 and table.actions() == [bj.HIT, bj.STAND, bj.DOUBLE]  # no second split
    table.act(bj.DOUBLE)
    assert table.active == 1 and not table.finished
    table.act(bj.STAND)
    # Dealer 16 draws 7: 23, bust. Doubled hand 200 -> 400, other 100 -> 200.
    assert table.finished and table.total_stake == 300 and table.returned() == 600


def test_split_aces_take_one_card_each_and_21_is_not_blackjack():
    table = deal("AS", "9H", "AD", "7C", "KH", "5S", "2D")
    table.act(bj.SPLIT)  # A+K = 21 pays 1:1, not 3:2; A+5 = soft 16 must stand: aces take one card each
    assert table.finished and [len(h.cards) for h in table.hands] == [2, 2]
    assert table.returned() == 200  # dealer 9+7+2 = 18: 21 wins 200, 16 loses


def test_stake_must_be_even_so_3_to_2_is_exact():
    with pytest.raises(bj.RuleError):
        deal("AS", "9H", "KD", "7C", stake=101)
    with pytest.raises(bj.RuleError):
        deal("TS", "9H", "7D", "7C").act(bj.SPLIT)


# --- blackjack RTP --------------------------------------------------------------------------------------


def test_blackjack_theoretical_rtp_is_the_published_figure():
    rtp = blackjack_rtp.theoretical_rtp()
    assert 0.99429 < rtp < 0.99430  # house edge 0.5704 %
    assert GAMES[BLACKJACK].rtp_basis_points == round(rtp * 10_000) == 9943


@pytest.mark.parametrize(("hand", "up", "action"), [
    ((8, 8), 10, "split"), ((1, 1), 6, "split"), ((10, 10), 6, "stand"), ((5, 5), 9, "double"),
    ((6, 5), 6, "double"), ((10, 2), 4, "stand"), ((10, 2), 2, "hit"), ((10, 6), 10, "hit"),
    ((10, 7), 1, "stand"), ((1, 7), 9, "hit"), ((1, 7), 3, "double"), ((1, 7), 2, "stand"), ((9, 9), 7, "stand"),
])
def test_computed_strategy_is_textbook_basic_strategy(hand, up, action):
    """Spot checks against the standard S17 / DAS basic strategy chart: the recursion is not just a number."""
    assert blackjack_rtp.optimal_action(list(hand), up, can_split=True) == action


def test_the_table_played_optimally_returns_the_computed_rtp():
    """Monte Carlo of the real Table with the computed strategy: 20,000 hands, profit per initial stake
    within 4 standard errors of the exact figure (tolerance about 3.3 points at this size)."""
    rng = random.Random(9)

    def shoe():
        while True:
            yield rng.randrange(52)

    results = []
    for _ in range(20_000):
        table = bj.Table.deal(2, shoe())
        while not table.finished:
            hand = table.hands[table.active]
            can_split = bj.SPLIT in table.actions()
            table.act(blackjack_rtp.optimal_action([bj.value(c) for c in hand.cards], bj.value(table.dealer[0]),
                                                   can_split))
        results.append((table.returned() - table.total_stake) / 2)
    mean = sum(results) / len(results)
    sd = math.sqrt(sum((r - mean) ** 2 for r in results) / (len(results) - 1))
    assert abs(1 + mean - float(blackjack_rtp.theoretical_rtp())) < 4 * sd / math.sqrt(len(results))


# --- provably fair vectors ------------------------------------------------------------------------------


def readme_draws(server_seed: str, client_seed: str, nonce: int, n: int, count: int) -> list[int]:
    """The README's algorithm written out again, so the vectors check the document, not just the code."""
    out, cursor = [], 0
    while len(out) < count:
        digest = hmac.new(server_seed.encode(), f"{client_seed}:{nonce}:{cursor}".encode(), hashlib.sha256).digest()
        for i in range(0, 32, 4):
            word = int.from_bytes(digest[i:i + 4], "big")
            if word < (2**32 // n) * n and len(out) < count:
                out.append(word % n)
        cursor += 1
    return out


@pytest.mark.parametrize("vector", VECTORS["roulette"], ids=lambda v: f"nonce-{v['nonce']}")
def test_roulette_vectors_reproduce(vector):
    args = (vector["server_seed"], vector["client_seed"], vector["nonce"])
    assert hashlib.sha256(vector["server_seed"].encode()).hexdigest() == vector["server_seed_hash"]
    assert fairness.pocket(*args) == readme_draws(*args, 37, 1)[0] == vector["pocket"]


@pytest.mark.parametrize("vector", VECTORS["blackjack"], ids=lambda v: f"nonce-{v['nonce']}")
def test_blackjack_vectors_replay_a_hand(vector):
    args = (vector["server_seed"], vector["client_seed"], vector["nonce"])
    assert hashlib.sha256(vector["server_seed"].encode()).hexdigest() == vector["server_seed_hash"]
    assert [bj.card_name(c) for c in readme_draws(*args, 52, len(vector["cards"]))] == vector["cards"]
    table = bj.Table.deal(vector["stake"], fairness.cards(*args))
    for action in vector["actions"]:
        table.act(action)
    assert table.finished
    assert [{"cards": [bj.card_name(c) for c in h.cards], "stake": h.stake, "doubled": h.doubled}
            for h in table.hands] == vector["hands"]
    assert [bj.card_name(c) for c in table.dealer] == vector["dealer"]
    assert table.returned() == vector["returned"]


def test_vectors_include_a_split_with_a_double_and_a_natural():
    actions = [v["actions"] for v in VECTORS["blackjack"]]
    assert ["split", "double"] == actions[0][:2] and [] in actions
