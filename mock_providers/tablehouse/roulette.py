"""European roulette: one zero, 37 pockets, and the bets of the layout as sets of numbers.

A bet returns amount * 36 / len(numbers) when the pocket is one of its numbers (straight 35:1 ... even
money 1:1), so every bet has the same theoretical RTP, 36/37 = 97.30 %. 36 is divisible by every bet size
(1, 2, 3, 4, 6, 12, 18), so each return is an exact integer.
"""

from fractions import Fraction

RED = frozenset({1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36})
BLACK = frozenset(range(1, 37)) - RED


def _valid_bets() -> dict[str, frozenset[frozenset[int]]]:
    rows = [range(n, n + 3) for n in range(1, 37, 3)]  # 1-2-3, 4-5-6, ... 34-35-36
    splits = {frozenset({n, n + 1}) for n in range(1, 37) if n % 3 != 0}  # across a row
    splits |= {frozenset({n, n + 3}) for n in range(1, 34)}  # down the layout
    splits |= {frozenset({0, n}) for n in (1, 2, 3)}
    corners = {frozenset({n, n + 1, n + 3, n + 4}) for n in range(1, 33) if n % 3 != 0}
    return {
        "straight": frozenset(frozenset({n}) for n in range(37)),
        "split": frozenset(splits),
        "street": frozenset({frozenset(r) for r in rows} | {frozenset({0, 1, 2}), frozenset({0, 2, 3})}),
        "corner": frozenset(corners | {frozenset({0, 1, 2, 3})}),
        "line": frozenset(frozenset(range(n, n + 6)) for n in range(1, 32, 3)),
        "dozen": frozenset(frozenset(range(n, n + 12)) for n in (1, 13, 25)),
        "column": frozenset(frozenset(range(k, 37, 3)) for k in (1, 2, 3)),
        "red": frozenset({RED}),
        "black": frozenset({BLACK}),
        "odd": frozenset({frozenset(range(1, 37, 2))}),
        "even": frozenset({frozenset(range(2, 37, 2))}),
        "low": frozenset({frozenset(range(1, 19))}),
        "high": frozenset({frozenset(range(19, 37))}),
    }


VALID_BETS = _valid_bets()
PAYS_TO_ONE = {kind: 36 // len(next(iter(sets))) - 1 for kind, sets in VALID_BETS.items()}


def is_valid(kind: str, numbers: frozenset[int]) -> bool:
    return numbers in VALID_BETS.get(kind, frozenset())


def returned(numbers: frozenset[int], amount: int, pocket: int) -> int:
    """What one bet returns, its stake included: amount * 36 / len(numbers) on a hit, else 0."""
    return amount * 36 // len(numbers) if pocket in numbers else 0


def colour(pocket: int) -> str:
    return "GREEN" if pocket == 0 else "RED" if pocket in RED else "BLACK"


def theoretical_rtp(kind: str) -> Fraction:
    """Exact RTP of every bet of a kind, by enumerating the 37 equally likely pockets."""
    rtps = {Fraction(sum(returned(numbers, 1, p) for p in range(37)), 37) for numbers in VALID_BETS[kind]}
    assert len(rtps) == 1, rtps
    return rtps.pop()
