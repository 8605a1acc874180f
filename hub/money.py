"""Currencies and exact money arithmetic. Amounts are int minor units; nothing here ever rounds."""

from dataclasses import dataclass

from hub.errors import DomainError, Reason

# ISO 4217 minor-unit exponents, plus crypto currencies with the hub's own exponents.
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "AUD": 2, "SEK": 2, "NOK": 2, "BRL": 2, "TRY": 2,
    "JPY": 0, "KRW": 0, "CLP": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "TND": 3,
    "BTC": 8, "ETH": 8, "USDT": 6,
}
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Money:
    currency: str
    amount_minor: int


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise DomainError(Reason.UNKNOWN_CURRENCY, f"unknown currency {currency!r}") from None


def positive_amount(currency: str, amount_minor: int) -> Money:
    """Validate a money-moving amount: known currency, 0 < amount <= int64 max."""
    exponent(currency)
    if amount_minor <= 0 or amount_minor > INT64_MAX:
        raise DomainError(Reason.INVALID_AMOUNT, f"amount must be between 1 and {INT64_MAX} minor units")
    return Money(currency, amount_minor)


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
