"""The theoretical RTP of Tablehouse blackjack, computed exactly (rational arithmetic) for its rules.

With an infinite shoe every card is independent of the others, so the expected return of optimal play is a
finite recursion: the dealer's final-total distribution for each up card (conditioned on no dealer
blackjack, since the dealer peeks), then for every player hand the best of stand, hit, double and (for a
pair) split, where split hands may double but not split again and split aces take one card. RTP is the
mean return per unit of the initial stake (the industry's "1 - house edge"). `optimal_action` is the
strategy this computes; the tests play it through the real `Table` to check the two agree.
"""

from fractions import Fraction
from functools import cache

# Card values 1 (ace) .. 10, with their probabilities in an infinite shoe.
P = {v: Fraction(4 if v == 10 else 1, 13) for v in range(1, 11)}
BUST = 22


def _state(cards: list[int]) -> tuple[int, bool]:
    hard = sum(cards)
    if 1 in cards and hard + 10 <= 21:
        return hard + 10, True
    return hard, False


@cache
def _dealer_from(total: int, soft: bool) -> tuple[tuple[int, Fraction], ...]:
    """Final dealer totals (17..21, or BUST) from a hand of at least two cards."""
    if total > 21:
        return ((BUST, Fraction(1)),)
    if total >= 17:  # stands on soft 17 too
        return ((total, Fraction(1)),)
    out: dict[int, Fraction] = {}
    hard = total - 10 if soft else total
    for card, p in P.items():
        new = _state_hard(hard + card, soft or card == 1)
        for final, q in _dealer_from(*new):
            out[final] = out.get(final, Fraction(0)) + p * q
    return tuple(sorted(out.items()))


def _state_hard(hard: int, has_ace: bool) -> tuple[int, bool]:
    if has_ace and hard + 10 <= 21:
        return hard + 10, True
    return hard, False


@cache
def dealer_finals(up: int) -> dict[int, Fraction]:
    """The dealer's final totals for an up card, given the dealer has no blackjack (the peek)."""
    holes = {c: p for c, p in P.items() if _state([up, c])[0] != 21}
    norm = sum(holes.values())
    out: dict[int, Fraction] = {}
    for hole, p in holes.items():
        for final, q in _dealer_from(*_state([up, hole])):
            out[final] = out.get(final, Fraction(0)) + p / norm * q
    return out


@cache
def ev_stand(total: int, up: int) -> Fraction:
    if total > 21:
        return Fraction(-1)
    return sum((p if final == BUST or final < total else -p if final > total else Fraction(0))
               for final, p in dealer_finals(up).items())


@cache
def ev_hit_or_stand(hard: int, has_ace: bool, up: int) -> tuple[Fraction, str]:
    """Best of hit and stand for a hand (given by its hard total and whether it holds an ace)."""
    total = _state_hard(hard, has_ace)[0]
    if total > 21:
        return Fraction(-1), "stand"
    stand = ev_stand(total, up)
    if total == 21:
        return stand, "stand"
    hit = sum(p * ev_hit_or_stand(hard + c, has_ace or c == 1, up)[0] for c, p in P.items())
    return (hit, "hit") if hit > stand else (stand, "stand")


@cache
def ev_double(hard: int, has_ace: bool, up: int) -> Fraction:
    return 2 * sum(p * ev_stand(_state_hard(hard + c, has_ace or c == 1)[0], up) for c, p in P.items())


@cache
def ev_two_cards(a: int, b: int, up: int, can_split: bool) -> tuple[Fraction, str]:
    """Best action on a two-card hand that is not a blackjack."""
    hard, has_ace = a + b, 1 in (a, b)
    options = [ev_hit_or_stand(hard, has_ace, up), (ev_double(hard, has_ace, up), "double")]
    if can_split and a == b:
        options.append((2 * ev_split_hand(a, up), "split"))
    return max(options, key=lambda option: option[0])


@cache
def ev_split_hand(card: int, up: int) -> Fraction:
    """One hand of a split pair: its second card, then (aces excepted) the best of stand/hit/double."""
    out = Fraction(0)
    for c, p in P.items():
        if card == 1:
            out += p * ev_stand(_state([1, c])[0], up)  # split aces: one card each; 21 is not blackjack
        elif _state([card, c])[0] == 21:
            out += p * ev_stand(21, up)
        else:
            out += p * ev_two_cards(card, c, up, can_split=False)[0]
    return out


def optimal_action(cards: list[int], up: int, can_split: bool) -> str:
    """The action this computation finds best, for card values (ace = 1) and the dealer's up card value.
    Only two-card hands may double or split, as in the game."""
    if len(cards) == 2:
        return ev_two_cards(cards[0], cards[1], up, can_split)[1]
    return ev_hit_or_stand(sum(cards), 1 in cards, up)[1]


@cache
def theoretical_rtp() -> Fraction:
    """Expected return per unit of initial stake, playing optimally."""
    ev = Fraction(0)
    for up, pu in P.items():
        dealer_bj = sum(p for hole, p in P.items() if _state([up, hole])[0] == 21)
        for a, pa in P.items():
            for b, pb in P.items():
                player_bj = _state([a, b])[0] == 21
                if player_bj:
                    hand_ev = dealer_bj * 0 + (1 - dealer_bj) * Fraction(3, 2)
                else:
                    hand_ev = dealer_bj * -1 + (1 - dealer_bj) * ev_two_cards(a, b, up, can_split=True)[0]
                ev += pu * pa * pb * hand_ev
    return 1 + ev
