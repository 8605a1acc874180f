import pytest

from hub.errors import DomainError, Reason
from hub.money import INT64_MAX, from_scaled_units, positive_amount, to_scaled_units


@pytest.mark.parametrize("currency,minor,scaled", [
    ("USD", 1, 1_000), ("USD", 1050, 1_050_000), ("JPY", 7, 700_000), ("KWD", 1, 100), ("BTC", 1000, 1),
])
def test_provider_scale_round_trips_exactly(currency: str, minor: int, scaled: int) -> None:
    assert to_scaled_units(currency, minor, 100_000) == scaled
    assert from_scaled_units(currency, scaled, 100_000) == minor


@pytest.mark.parametrize("currency,minor", [("BTC", 1), ("BTC", 999), ("USDT", 5)])
def test_amount_below_provider_resolution_is_refused_not_rounded(currency: str, minor: int) -> None:
    with pytest.raises(DomainError) as err:
        to_scaled_units(currency, minor, 100_000)
    assert err.value.reason is Reason.AMOUNT_NOT_REPRESENTABLE


def test_provider_amount_with_fraction_of_a_minor_unit_is_refused() -> None:
    with pytest.raises(DomainError) as err:
        from_scaled_units("USD", 1_500, 100_000)  # 1.5 cents
    assert err.value.reason is Reason.AMOUNT_NOT_REPRESENTABLE


@pytest.mark.parametrize("amount", [0, -1, INT64_MAX + 1])
def test_money_moving_amount_must_be_positive_int64(amount: int) -> None:
    with pytest.raises(DomainError) as err:
        positive_amount("USD", amount)
    assert err.value.reason is Reason.INVALID_AMOUNT


def test_unknown_currency() -> None:
    with pytest.raises(DomainError) as err:
        positive_amount("XXX", 10)
    assert err.value.reason is Reason.UNKNOWN_CURRENCY
