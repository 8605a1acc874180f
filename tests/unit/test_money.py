import pytest

from adapters import money as sdk_money
from adapters.base import AmountNotRepresentable, UnknownCurrency
from adapters.money import from_scaled_units, to_scaled_units
from hub.errors import DomainError, Reason
from hub.money import INT64_MAX, positive_amount


@pytest.mark.parametrize("currency,minor,scaled", [
    ("USD", 1, 1_000), ("USD", 1050, 1_050_000), ("JPY", 7, 700_000), ("KWD", 1, 100), ("BTC", 1000, 1),
])
def test_provider_scale_round_trips_exactly(currency: str, minor: int, scaled: int) -> None:
    assert to_scaled_units(currency, minor, 100_000) == scaled
    assert from_scaled_units(currency, scaled, 100_000) == minor


@pytest.mark.parametrize("currency,minor", [("BTC", 1), ("BTC", 999), ("USDT", 5)])
def test_amount_below_provider_resolution_is_refused_not_rounded(currency: str, minor: int) -> None:
    with pytest.raises(AmountNotRepresentable):
        to_scaled_units(currency, minor, 100_000)


def test_studio_currency_outside_the_table_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        from_scaled_units("XXX", 100_000, 100_000)


def test_provider_amount_with_fraction_of_a_minor_unit_is_refused() -> None:
    with pytest.raises(AmountNotRepresentable):
        from_scaled_units("USD", 1_500, 100_000)  # 1.5 cents


@pytest.mark.parametrize("amount", [0, -1, INT64_MAX + 1])
def test_money_moving_amount_must_be_positive_int64(amount: int) -> None:
    with pytest.raises(DomainError) as err:
        positive_amount("USD", amount)
    assert err.value.reason is Reason.INVALID_AMOUNT


def test_unknown_currency() -> None:
    with pytest.raises(DomainError) as err:
        positive_amount("XXX", 10)
    assert err.value.reason is Reason.UNKNOWN_CURRENCY


# --- currency table edge cases and exact conversion -------------------------------------------------

import decimal  # noqa: E402
from datetime import datetime  # noqa: E402
from fractions import Fraction  # noqa: E402

from hypothesis import given, strategies as st  # noqa: E402

from hub.money import CURRENCY_EXPONENTS, ExchangeRate, Money, add_currency, convert  # noqa: E402

AS_OF = datetime(2026, 11, 24, 12, 0)


@pytest.mark.parametrize("currency,exponent", [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3),
                                               ("BTC", 8), ("USDT", 6)])
def test_currency_table_exponents(currency: str, exponent: int) -> None:
    assert CURRENCY_EXPONENTS[currency] == exponent


def test_point_9999_mbtc_is_exact_in_satoshi_but_not_at_a_1e5_provider() -> None:
    # 0.9999 mBTC = 99_990 satoshi: exact in the wallet, but 99.99 units of a 1/100000-BTC provider.
    with pytest.raises(AmountNotRepresentable):
        to_scaled_units("BTC", 99_990, 100_000)
    assert to_scaled_units("BTC", 100_000, 100_000) == 100  # 1 mBTC is 100 units


def test_three_decimal_currency_keeps_its_last_digit() -> None:
    assert to_scaled_units("KWD", 1_005, 100_000) == 100_500  # 1.005 KWD
    assert from_scaled_units("KWD", 100_500, 100_000) == 1_005
    with pytest.raises(AmountNotRepresentable):
        from_scaled_units("KWD", 100_550, 100_000)  # 1.0055 KWD has no fils representation


def test_exact_conversion_or_refusal() -> None:
    usd_eur = ExchangeRate.parse("USD", "EUR", "0.92", AS_OF)
    assert convert(Money("USD", 100), usd_eur) == Money("EUR", 92)
    with pytest.raises(DomainError) as err:
        convert(Money("USD", 101), usd_eur)  # 92.92 euro cents
    assert err.value.reason is Reason.AMOUNT_NOT_REPRESENTABLE
    assert convert(Money("USD", 101), usd_eur, decimal.ROUND_HALF_EVEN) == Money("EUR", 93)
    assert convert(Money("USD", 101), usd_eur, decimal.ROUND_DOWN) == Money("EUR", 92)


def test_conversion_across_exponents() -> None:
    usd_jpy = ExchangeRate.parse("USD", "JPY", "151.37", AS_OF)
    assert convert(Money("USD", 10_000), usd_jpy) == Money("JPY", 15_137)  # $100.00
    with pytest.raises(DomainError):
        convert(Money("USD", 1), usd_jpy)  # 1.5137 yen
    kwd_usd = ExchangeRate.parse("KWD", "USD", "3.25", AS_OF)
    assert convert(Money("KWD", 1_000), kwd_usd) == Money("USD", 325)
    with pytest.raises(DomainError):
        convert(Money("KWD", 1), kwd_usd)  # 0.325 cents


def test_half_even_rounds_ties_to_even() -> None:
    rate = ExchangeRate.parse("USD", "EUR", "0.5", AS_OF)
    assert convert(Money("USD", 1), rate, decimal.ROUND_HALF_EVEN) == Money("EUR", 0)
    assert convert(Money("USD", 3), rate, decimal.ROUND_HALF_EVEN) == Money("EUR", 2)


def test_rates_are_decimal_strings_never_floats() -> None:
    with pytest.raises(TypeError):
        ExchangeRate.parse("USD", "EUR", 0.92, AS_OF)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ExchangeRate.parse("USD", "EUR", "-1", AS_OF)
    with pytest.raises(DomainError):
        ExchangeRate.parse("USD", "XXX", "1", AS_OF)
    with pytest.raises(DomainError) as err:
        convert(Money("EUR", 1), ExchangeRate.parse("USD", "EUR", "1", AS_OF))
    assert err.value.reason is Reason.CURRENCY_MISMATCH


@given(amount=st.integers(min_value=0, max_value=10**15),
       rate=st.decimals(min_value="0.0001", max_value="10000", places=4, allow_nan=False, allow_infinity=False))
def test_conversion_is_exact_whenever_it_answers(amount: int, rate: decimal.Decimal) -> None:
    parsed = ExchangeRate.parse("USD", "KWD", str(rate), AS_OF)
    expected = Fraction(amount) * Fraction(rate) * 10
    try:
        result = convert(Money("USD", amount), parsed)
    except DomainError:
        assert expected.denominator != 1
    else:
        assert Fraction(result.amount_minor) == expected


def test_configured_crypto_currency_and_no_iso_redefinition() -> None:
    try:
        add_currency("XTEST", 8)
        assert CURRENCY_EXPONENTS["XTEST"] == 8
        assert sdk_money.exponent("XTEST") == 8  # one table: what the hub adds, adapters see
        add_currency("XTEST", 8)  # the same again is fine
    finally:
        CURRENCY_EXPONENTS.pop("XTEST", None)
    with pytest.raises(ValueError):
        add_currency("USD", 3)
    with pytest.raises(ValueError):
        add_currency("bad code", 2)
