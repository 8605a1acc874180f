"""Currencies and exact money arithmetic. Amounts are int minor units; nothing rounds unless asked to."""

import decimal
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from casinohub.v1 import common_pb2
from hub.errors import DomainError, Reason, quote

# ISO 4217 minor-unit exponents, plus crypto currencies with the hub's own exponents.
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "AUD": 2, "SEK": 2, "NOK": 2, "BRL": 2, "TRY": 2,
    "JPY": 0, "KRW": 0, "CLP": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "TND": 3,
    "BTC": 8, "ETH": 8, "USDT": 6,
}
INT64_MAX = 2**63 - 1
# The most one transaction may move, per currency (configurable). Without it one deposit of int64-max
# would fill the operator's external account and every later deposit in that currency would overflow it.
# Process-wide, like the currency table; no maximum may exceed CEILING, so a million transactions at
# the maximum still fit in an int64 account.
MAX_TRANSACTION_MINOR: dict[str, int] = {}
MAX_TRANSACTION_CEILING = INT64_MAX // 10**6


@dataclass(frozen=True)
class Money:
    currency: str
    amount_minor: int


def money_message(currency: str, amount_minor: int) -> common_pb2.Money:
    return common_pb2.Money(currency=currency, amount_minor=amount_minor)


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise DomainError(Reason.UNKNOWN_CURRENCY, f"unknown currency {quote(currency)}") from None


def max_transaction(currency: str) -> int:
    """The configured maximum, else a billion major units (at most the ceiling)."""
    configured = MAX_TRANSACTION_MINOR.get(currency)
    return configured if configured else min(10 ** (exponent(currency) + 9), MAX_TRANSACTION_CEILING)


def positive_amount(currency: str, amount_minor: int) -> Money:
    """Validate an amount a client asks to move: known currency, 1 .. the currency's per-transaction maximum."""
    exponent(currency)
    if amount_minor <= 0 or amount_minor > INT64_MAX:
        raise DomainError(Reason.INVALID_AMOUNT, f"amount must be between 1 and {INT64_MAX} minor units")
    if amount_minor > (most := max_transaction(currency)):
        raise DomainError(Reason.AMOUNT_ABOVE_MAXIMUM,
                          f"one transaction moves at most {most} minor {currency}",
                          metadata={"max_amount_minor": str(most)})
    return Money(currency, amount_minor)


def set_max_transaction(currency: str, amount_minor: int) -> None:
    """Set a currency's per-transaction maximum from configuration."""
    exponent(currency)
    if not 0 < amount_minor <= MAX_TRANSACTION_CEILING:
        raise ValueError(f"max_transaction_minor of {currency} must be 1..{MAX_TRANSACTION_CEILING}")
    MAX_TRANSACTION_MINOR[currency] = amount_minor


def to_scaled_units(currency: str, amount_minor: int, units_per_major: int) -> int:
    """Convert minor units to a provider's integer scale (e.g. 1/100000 of a unit), exactly or not at all."""
    numerator = amount_minor * units_per_major
    denominator = 10 ** exponent(currency)
    if numerator % denominator:
        raise DomainError(
            Reason.AMOUNT_NOT_REPRESENTABLE,
            f"{amount_minor} minor {currency} is not a whole number of 1/{units_per_major} units",
        )
    return numerator // denominator


def from_scaled_units(currency: str, scaled: int, units_per_major: int) -> int:
    """Convert a provider's integer scale back to minor units, refusing any remainder."""
    numerator = scaled * 10 ** exponent(currency)
    if numerator % units_per_major:
        raise DomainError(
            Reason.AMOUNT_NOT_REPRESENTABLE,
            f"{scaled}/{units_per_major} {currency} is not a whole number of minor units",
        )
    return numerator // units_per_major


def add_currency(code: str, exponent_: int) -> None:
    """Add a currency (typically crypto) from configuration. ISO exponents cannot be redefined: every
    stored amount in that currency would silently change value."""
    if not (code.isascii() and code.isalnum() and code.isupper() and 2 <= len(code) <= 8):
        raise ValueError(f"currency code {code!r} must be 2..8 upper-case letters or digits")
    if not 0 <= exponent_ <= 18:
        raise ValueError(f"exponent of {code} must be 0..18")
    if CURRENCY_EXPONENTS.get(code, exponent_) != exponent_:
        raise ValueError(f"{code} already has exponent {CURRENCY_EXPONENTS[code]}")
    CURRENCY_EXPONENTS[code] = exponent_


@dataclass(frozen=True)
class ExchangeRate:
    """Units of `quote` for one unit of `base` at `as_of`. For reporting and display only: bets always
    settle in the wallet's own currency."""

    base: str
    quote: str
    rate: Fraction
    as_of: datetime

    @classmethod
    def parse(cls, base: str, quote: str, rate: str, as_of: datetime) -> "ExchangeRate":
        """rate is a decimal string ("0.9231"); floats are refused so no binary rounding sneaks in."""
        if not isinstance(rate, str):
            raise TypeError("give the rate as a decimal string, not a float")
        exponent(base), exponent(quote)
        try:
            value = Fraction(decimal.Decimal(rate))
        except decimal.InvalidOperation:
            raise ValueError(f"rate {rate!r} is not a decimal number") from None
        if value <= 0:
            raise ValueError("rate must be positive")
        return cls(base, quote, value, as_of)


ROUNDING_MODES = {decimal.ROUND_HALF_EVEN, decimal.ROUND_HALF_UP, decimal.ROUND_DOWN, decimal.ROUND_UP,
                  decimal.ROUND_FLOOR, decimal.ROUND_CEILING}


def convert(money: Money, rate: ExchangeRate, rounding: str | None = None) -> Money:
    """money in rate.quote. Exact or refused (AMOUNT_NOT_REPRESENTABLE); with an explicit decimal rounding
    mode (e.g. decimal.ROUND_HALF_EVEN) the caller chooses to round."""
    if money.currency != rate.base:
        raise DomainError(Reason.CURRENCY_MISMATCH, f"rate converts {rate.base}, not {money.currency}")
    exact = Fraction(money.amount_minor) * rate.rate * 10 ** exponent(rate.quote) / 10 ** exponent(rate.base)
    if exact.denominator == 1:
        return Money(rate.quote, exact.numerator)
    if rounding is None:
        raise DomainError(Reason.AMOUNT_NOT_REPRESENTABLE,
                          f"{money.amount_minor} minor {money.currency} is {float(exact):.6f} minor {rate.quote}, "
                          "not a whole number; pass a rounding mode to round explicitly")
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    context = decimal.Context(prec=60, rounding=rounding)
    quotient = context.divide(decimal.Decimal(exact.numerator), decimal.Decimal(exact.denominator))
    return Money(rate.quote, int(quotient.quantize(decimal.Decimal(1), context=context)))
