"""The hub's own reading of Tablehouse's published rules (its README), so a win is recomputed, never taken
on the studio's word. Written from the document, deliberately not sharing code with the mock."""

from dataclasses import dataclass

from adapters.base import ProviderProtocolError, ProviderRejected

# --- roulette -------------------------------------------------------------------------------------------

RED = frozenset({1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36})
OUTSIDE = {
    "red": RED, "black": frozenset(range(1, 37)) - RED,
    "odd": frozenset(range(1, 37, 2)), "even": frozenset(range(2, 37, 2)),
    "low": frozenset(range(1, 19)), "high": frozenset(range(19, 37)),
}
INSIDE_SIZES = {"straight": 1, "split": 2, "street": 3, "corner": 4, "line": 6}
KINDS = (*INSIDE_SIZES, "dozen", "column", *OUTSIDE)
DEFAULT_LAYOUT = "red"  # without a layout param the whole stake goes on red: even money, the table's commonest bet


@dataclass(frozen=True)
class RouletteBet:
    kind: str
    numbers: tuple[int, ...]  # ascending
    amount_minor: int  # hub minor units until the adapter converts it

    def returned(self, pocket: int) -> int:
        """The studio's rule: amount * 36 / len(numbers) on a hit, stake included (36 divides every size)."""
        return self.amount_minor * 36 // len(self.numbers) if pocket in self.numbers else 0


def parse_layout(spec: str, stake_minor: int) -> list[RouletteBet]:
    """`params[LAYOUT]`: positions separated by ";", each `kind[:selection]=amount` in hub minor units, e.g.
    "straight:17=100;split:17-20=50;dozen:2=50;red=200". Inside bets list their numbers joined by "-"
    (line: all six); dozen and column take 1..3; outside bets nothing. A lone kind ("red") takes the whole
    stake. The amounts must add up to the stake. Refused (ProviderRejected) before the studio hears of it."""
    positions = [p.strip() for p in spec.split(";") if p.strip()]
    if not positions or len(positions) > 64:
        raise ProviderRejected("a roulette layout needs 1..64 bets")
    if len(positions) == 1 and "=" not in positions[0]:
        positions = [f"{positions[0]}={stake_minor}"]
    bets = []
    for position in positions:
        head, _, amount = position.partition("=")
        kind, _, selection = head.strip().lower().partition(":")
        if not amount.strip().isdigit() or int(amount) <= 0:
            raise ProviderRejected(f"roulette bet {position[:40]!r} needs a positive amount")
        bets.append(RouletteBet(kind, _numbers(kind, selection.strip(), position), int(amount)))
    if sum(b.amount_minor for b in bets) != stake_minor:
        raise ProviderRejected(f"the roulette layout stakes {sum(b.amount_minor for b in bets)}, "
                               f"not the bet of {stake_minor}")
    return bets


def _numbers(kind: str, selection: str, position: str) -> tuple[int, ...]:
    try:
        if kind in OUTSIDE and not selection:
            return tuple(sorted(OUTSIDE[kind]))
        if kind in ("dozen", "column") and selection in ("1", "2", "3"):
            k = int(selection)
            return tuple(range(12 * k - 11, 12 * k + 1)) if kind == "dozen" else tuple(range(k, 37, 3))
        if kind in INSIDE_SIZES:
            numbers = tuple(sorted(int(n) for n in selection.split("-")))
            if len(set(numbers)) == INSIDE_SIZES[kind] and all(0 <= n <= 36 for n in numbers):
                return numbers  # the studio judges the geometry (INVALID_BET)
    except ValueError:
        pass
    raise ProviderRejected(f"roulette bet {position[:40]!r} is not one of {', '.join(KINDS)}")


# --- blackjack ------------------------------------------------------------------------------------------

RANKS = "A23456789TJQK"
SUITS = "SHDC"


def card_value(card: str) -> int:
    if len(card) != 2 or card[0] not in RANKS or card[1] not in SUITS:
        raise ProviderProtocolError(f"tablehouse card {card[:8]!r} is not a card")
    return min(RANKS.index(card[0]) + 1, 10)


def hand_total(cards: list[str]) -> int:
    hard = sum(card_value(c) for c in cards)
    return hard + 10 if any(card_value(c) == 1 for c in cards) and hard + 10 <= 21 else hard


def is_natural(cards: list[str], from_split: bool = False) -> bool:
    return len(cards) == 2 and not from_split and hand_total(cards) == 21


@dataclass(frozen=True)
class BlackjackHand:
    cards: list[str]
    stake: int
    doubled: bool
    from_split: bool


def check_hands(hands: list[BlackjackHand]) -> None:
    """What the rules allow a table to look like: one or two hands (one split) of one base stake, doubled
    hands at twice it with exactly three cards."""
    if not 1 <= len(hands) <= 2 or any(h.from_split != (len(hands) == 2) for h in hands):
        raise ProviderProtocolError("tablehouse dealt a table its rules do not allow")
    bases = {h.stake // 2 if h.doubled else h.stake for h in hands}
    if len(bases) != 1 or any(h.doubled and (h.stake % 2 or len(h.cards) != 3) for h in hands) or min(bases) <= 0:
        raise ProviderProtocolError("tablehouse hand stakes do not follow its rules")


def settle(hands: list[BlackjackHand], dealer: list[str]) -> int:
    """What a finished round returns, stakes included, after checking the dealer played by the rules
    (draws to 17, stands on every 17; draws nothing if every hand busted or the round ended on a natural)."""
    check_hands(hands)
    dealer_total = hand_total(dealer)
    if len(dealer) < 2:
        raise ProviderProtocolError("tablehouse finished a round without the dealer's hole card")
    ended_at_deal = is_natural(dealer) or (len(hands) == 1 and is_natural(hands[0].cards))
    all_bust = all(hand_total(h.cards) > 21 for h in hands)
    if ended_at_deal or all_bust:
        if len(dealer) != 2:
            raise ProviderProtocolError("tablehouse's dealer drew when the rules say stop")
    elif dealer_total < 17 or any(hand_total(dealer[:i]) >= 17 for i in range(2, len(dealer))):
        raise ProviderProtocolError("tablehouse's dealer did not draw to 17 and stop")
    paid = 0
    for hand in hands:
        mine, natural = hand_total(hand.cards), is_natural(hand.cards, hand.from_split)
        if is_natural(dealer):
            paid += hand.stake if natural else 0
        elif natural:
            paid += hand.stake * 3 // 2 + hand.stake
        elif mine > 21:
            continue
        elif dealer_total > 21 or mine > dealer_total:
            paid += 2 * hand.stake
        elif mine == dealer_total:
            paid += hand.stake
    return paid
