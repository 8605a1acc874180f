"""The adapter's own reading of Tablehouse's rules: layouts it sends and the wins it accepts."""

import pytest

from adapters.base import ProviderProtocolError, ProviderRejected
from adapters.tablehouse import rules
from adapters.tablehouse.rules import BlackjackHand


def hand(*cards: str, stake: int = 100, doubled: bool = False, from_split: bool = False) -> BlackjackHand:
    return BlackjackHand(list(cards), stake, doubled, from_split)


def test_layout_parsing_expands_every_kind_and_must_add_up_to_the_stake():
    bets = rules.parse_layout("straight:17=10; split:20-17=10;street:13-14-15=10;corner:0-1-2-3=10;"
                              "line:31-32-33-34-35-36=10;dozen:2=10;column:3=10;black=10;odd=10;high=10", 100)
    assert [(b.kind, len(b.numbers)) for b in bets] == [
        ("straight", 1), ("split", 2), ("street", 3), ("corner", 4), ("line", 6), ("dozen", 12), ("column", 12),
        ("black", 18), ("odd", 18), ("high", 18)]
    assert bets[1].numbers == (17, 20) and bets[5].numbers[0] == 13 and bets[6].numbers[:2] == (3, 6)
    assert sum(b.returned(17) for b in bets) == 360 + 180 + 0 + 0 + 0 + 30 + 0 + 20 + 20 + 0
    assert [(b.kind, b.amount_minor) for b in rules.parse_layout("red", 250)] == [("red", 250)]


@pytest.mark.parametrize("layout", ["", "red=50", "red=60;black=50", "straight:37=100", "split:1=100",
                                    "dozen:0=100", "red:1=100", "straight:x=100", "red=-100", "red=1e2"])
def test_layouts_that_are_not_bets_are_refused(layout):
    with pytest.raises(ProviderRejected):
        rules.parse_layout(layout, 100)


def test_blackjack_settlement_worked_examples():
    assert rules.settle([hand("AS", "KD")], ["9H", "7C"]) == 250  # 3:2
    assert rules.settle([hand("AS", "KD")], ["AH", "QC"]) == 100  # natural v natural: push
    assert rules.settle([hand("TS", "QD")], ["AH", "QC"]) == 0  # the dealer peeked
    assert rules.settle([hand("TS", "9D")], ["6H", "TC", "5S"]) == 0  # 19 v 21
    assert rules.settle([hand("TS", "6D", "KH")], ["6H", "TC"]) == 0  # busts lose; the dealer stops
    assert rules.settle([hand("5S", "6D", "TH", stake=200, doubled=True)], ["6H", "TC", "9S"]) == 400
    split = [hand("AS", "KH", from_split=True), hand("AD", "5S", from_split=True)]
    assert rules.settle(split, ["9H", "7C", "2D"]) == 200  # 21 after a split pays 1:1; soft 16 loses to 18


def test_a_dealer_who_breaks_the_drawing_rule_is_caught():
    with pytest.raises(ProviderProtocolError, match="dealer"):
        rules.settle([hand("TS", "8D")], ["AH", "6C", "2S"])  # drew on soft 17
    with pytest.raises(ProviderProtocolError, match="dealer"):
        rules.settle([hand("TS", "8D")], ["TH", "5C"])  # stood on 15
    with pytest.raises(ProviderProtocolError, match="dealer"):
        rules.settle([hand("TS", "6D", "KH")], ["6H", "TC", "KD"])  # drew although every hand busted


def test_tables_the_rules_cannot_produce_are_caught():
    with pytest.raises(ProviderProtocolError):
        rules.check_hands([hand("TS", "8D", stake=100), hand("TS", "9D", stake=200)])  # unequal split stakes
    with pytest.raises(ProviderProtocolError):
        rules.check_hands([hand("5S", "6D", stake=200, doubled=True)])  # doubled without its card
    with pytest.raises(ProviderProtocolError):
        rules.check_hands([hand("5S", "6D", from_split=True)] * 3)  # two splits
    with pytest.raises(ProviderProtocolError):
        rules.card_value("1S")
