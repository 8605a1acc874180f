"""The live table's fault knobs and its stake conversion, without a hub."""

import pytest

from mock_providers.livehouse.faults import Faults
from mock_providers.livehouse.server import minor_units


def test_next_fires_exactly_that_many_times_and_is_counted() -> None:
    faults = Faults()
    faults.update({"duplicate_next": 2})
    assert [faults.fires("duplicate") for _ in range(4)] == [True, True, False, False]
    assert faults.injected == {"duplicate": 2}
    assert not faults.fires("timeout")


def test_rates_draw_from_the_seed_so_a_run_repeats() -> None:
    def draws() -> list[bool]:
        faults = Faults()
        faults.update({"error_rate": 0.3, "seed": 7})
        return [faults.fires("error") for _ in range(200)]

    first = draws()
    assert first == draws() and 30 < sum(first) < 90


def test_out_of_order_gives_either_order_and_the_next_knobs_first() -> None:
    faults = Faults()
    faults.update({"rollback_before_bet_next": 1})
    assert faults.out_of_order() == "rollback_before_bet" and faults.out_of_order() == ""
    faults.update({"out_of_order_rate": 1, "seed": 1})
    assert {faults.out_of_order() for _ in range(50)} == {"win_before_bet", "rollback_before_bet"}


@pytest.mark.parametrize("changes", [
    {"no_such_knob": 1}, {"error_rate": 1.5}, {"error_rate": "0.1"}, {"duplicate_next": -1},
    {"duplicate_next": 0.5}, {"latency_ms": True}, {"result_delay_s": 601}, ["error_rate"]])
def test_a_bad_knob_is_refused_and_none_changes(changes: object) -> None:
    faults = Faults()
    before = faults.knobs()
    with pytest.raises(ValueError):
        faults.update({"timeout_next": 3, **changes} if isinstance(changes, dict) else changes)
    assert faults.knobs() == before


@pytest.mark.parametrize(("currency", "amount", "minor"), [
    ("BTC", "0.00001", 1_000), ("BTC", "0.000000001", None), ("USD", "1.5", 150), ("USD", "0.001", None),
    ("USD", "1e2", 10_000), ("USD", "NaN", None), ("USD", "Infinity", None), ("USD", "abc", None),
    ("XXX", "1", None)])
def test_stakes_convert_to_minor_units_exactly_or_not_at_all(currency: str, amount: str, minor: int | None) -> None:
    assert minor_units(currency, amount) == minor
