"""Blackjack as Tablehouse deals it (README, "Blackjack rules"), as a state machine over a card source.

Infinite shoe (every card drawn independently and uniformly from a full deck: the provably-fair draws);
dealer stands on soft 17 and peeks for blackjack under an ace or ten; blackjack pays 3:2; double on any
first two cards, after a split too; one split of a pair of equal rank; split aces take one card each;
no surrender, no insurance. Money is integers: a stake must be even so 3:2 is exact.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

RANKS = "A23456789TJQK"
SUITS = "SHDC"
HIT, STAND, DOUBLE, SPLIT = "hit", "stand", "double", "split"


class RuleError(ValueError):
    """An action the rules do not allow now (the studio answers FAILED_PRECONDITION)."""


def card_name(card: int) -> str:
    return RANKS[card % 13] + SUITS[card // 13]


def value(card: int) -> int:
    return min(card % 13 + 1, 10)


def total(cards: list[int]) -> tuple[int, bool]:
    """The best total and whether it is soft (an ace counted as 11)."""
    hard = sum(value(c) for c in cards)
    if any(value(c) == 1 for c in cards) and hard + 10 <= 21:
        return hard + 10, True
    return hard, False


def is_blackjack(cards: list[int]) -> bool:
    return len(cards) == 2 and total(cards)[0] == 21


@dataclass
class Hand:
    cards: list[int]
    stake: int
    doubled: bool = False
    from_split: bool = False
    done: bool = False

    @property
    def natural(self) -> bool:
        return is_blackjack(self.cards) and not self.from_split


@dataclass
class Table:
    """One round. `deal` opens it; `act` applies the player's actions; `finished` and `returned` settle it."""

    source: Iterator[int] = field(repr=False)
    hands: list[Hand] = field(default_factory=list)
    dealer: list[int] = field(default_factory=list)
    active: int = 0
    finished: bool = False

    @classmethod
    def deal(cls, stake: int, source: Iterator[int]) -> "Table":
        if stake <= 0 or stake % 2:
            raise RuleError("the stake must be a positive even amount")
        table = cls(source=source)
        first, up, second, hole = (next(source) for _ in range(4))
        table.hands = [Hand([first, second], stake)]
        table.dealer = [up, hole]
        if is_blackjack(table.dealer) or table.hands[0].natural:
            table.hands[0].done = True  # the dealer peeked, or the player has blackjack: nothing to decide
            table.finished = True
        else:
            table._advance()
        return table

    @property
    def total_stake(self) -> int:
        return sum(h.stake for h in self.hands)

    @property
    def base_stake(self) -> int:
        hand = self.hands[0]
        return hand.stake // 2 if hand.doubled else hand.stake

    def actions(self) -> list[str]:
        if self.finished:
            return []
        hand = self.hands[self.active]
        allowed = [HIT, STAND]
        if len(hand.cards) == 2:
            allowed.append(DOUBLE)
            if len(self.hands) == 1 and hand.cards[0] % 13 == hand.cards[1] % 13:
                allowed.append(SPLIT)
        return allowed

    def extra_stake(self, action: str) -> int:
        """What an action adds to the round's stake: the active hand's stake for double and split."""
        return self.hands[self.active].stake if action in (DOUBLE, SPLIT) else 0

    def act(self, action: str) -> None:
        if action not in self.actions():
            raise RuleError(f"{action} is not allowed now")
        hand = self.hands[self.active]
        if action == HIT:
            hand.cards.append(next(self.source))
            hand.done = total(hand.cards)[0] >= 21
        elif action == STAND:
            hand.done = True
        elif action == DOUBLE:
            hand.stake *= 2
            hand.doubled = True
            hand.cards.append(next(self.source))
            hand.done = True
        else:  # SPLIT: the second card starts a new hand; each hand gets its second card when it is played
            moved = hand.cards.pop()
            hand.from_split = True
            self.hands.append(Hand([moved], hand.stake, from_split=True))
            self._second_card(hand)
        self._advance()

    def _second_card(self, hand: Hand) -> None:
        hand.cards.append(next(self.source))
        # Split aces take one card each; a 21 ends the hand either way.
        hand.done = value(hand.cards[0]) == 1 or total(hand.cards)[0] == 21

    def _advance(self) -> None:
        while self.active < len(self.hands):
            hand = self.hands[self.active]
            if len(hand.cards) == 1:
                self._second_card(hand)
            if total(hand.cards)[0] >= 21:
                hand.done = True
            if not hand.done:
                return
            self.active += 1
        self.active = len(self.hands) - 1
        if any(total(h.cards)[0] <= 21 for h in self.hands):
            while total(self.dealer)[0] < 17:  # stands on every 17, soft ones included
                self.dealer.append(next(self.source))
        self.finished = True

    def returned(self) -> int:
        """What the round pays back, stakes included (0 until finished)."""
        if not self.finished:
            return 0
        dealer_total = total(self.dealer)[0]
        paid = 0
        for hand in self.hands:
            mine = total(hand.cards)[0]
            if is_blackjack(self.dealer):
                paid += hand.stake if hand.natural else 0
            elif hand.natural:
                paid += hand.stake * 5 // 2
            elif mine > 21:
                continue
            elif dealer_total > 21 or mine > dealer_total:
                paid += 2 * hand.stake
            elif mine == dealer_total:
                paid += hand.stake
        return paid
