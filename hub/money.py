"""Currencies and exact money arithmetic. Amounts are int minor units; nothing rounds unless asked to."""

import decimal
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from adapters import money as sdk_money
from adapters.base import UnknownCurrency
from adapters.money import CURRENCY_EXPONENTS as CURRENCY_EXPONENTS, add_currency as add_currency
from hub.errors import DomainError, Reason, quote

# The currency table, its additions and the exact scaling to a studio's units live in the adapter SDK
# (adapters.money), so adapters need nothing from the hub; the hub re-exports them and speaks DomainError.

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


def exponent(currency: str) -> int:
    try:
        return sdk_money.exponent(currency)
    except UnknownCurrency:
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
