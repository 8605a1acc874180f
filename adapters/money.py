"""Money scaling for adapters: the hub's currency table and exact conversions between int minor units and a
studio's integer scale. Part of the adapter SDK, so it imports nothing from the hub; hub.money builds on it,
and there is one currency table for both."""

import re

from adapters.base import AmountNotRepresentable, UnknownCurrency

# ISO 4217 minor-unit exponents, plus crypto currencies with the hub's own exponents. Process-wide: the
# hub's configuration adds currencies to this same dict (add_currency), adapters read them here.
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "AUD": 2, "SEK": 2, "NOK": 2, "BRL": 2, "TRY": 2,
    "JPY": 0, "KRW": 0, "CLP": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "TND": 3,
    "BTC": 8, "ETH": 8, "USDT": 6,
}


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        # The code may come from a studio: quote only a short prefix of it.
        raise UnknownCurrency(f"unknown currency {currency[:16]!r}") from None


def to_scaled_units(currency: str, amount_minor: int, units_per_major: int) -> int:
    """Convert minor units to a provider's integer scale (e.g. 1/100000 of a unit), exactly or not at all."""
    numerator = amount_minor * units_per_major
    denominator = 10 ** exponent(currency)
    if numerator % denominator:
        raise AmountNotRepresentable(
            f"{amount_minor} minor {currency} is not a whole number of 1/{units_per_major} units")
    return numerator // denominator


def from_scaled_units(currency: str, scaled: int, units_per_major: int) -> int:
    """Convert a provider's integer scale back to minor units, refusing any remainder."""
    numerator = scaled * 10 ** exponent(currency)
    if numerator % units_per_major:
        raise AmountNotRepresentable(
            f"{scaled}/{units_per_major} {currency} is not a whole number of minor units")
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


_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,18})(?:\.([0-9]{1,18}))?")


def to_decimal_string(currency: str, amount_minor: int) -> str:
    """Minor units as a studio's decimal string in major units: 1250 USD -> "12.50", 5 JPY -> "5"."""
    places = exponent(currency)
    sign, digits = ("-" if amount_minor < 0 else ""), str(abs(amount_minor)).rjust(places + 1, "0")
    return sign + (f"{digits[:-places]}.{digits[-places:]}" if places else digits)


def from_decimal_string(currency: str, text: str) -> int:
    """A studio's non-negative decimal string in major units ("12.50") as minor units, exactly: trailing
    zeros beyond the currency's places are fine ("12.500"), a digit that is not zero there is refused
    ("12.505" USD), as is anything but plain digits and one point (no sign, exponent, spaces)."""
    found = _DECIMAL.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise AmountNotRepresentable(f"amount {str(text)[:24]!r} is not a decimal number like 12.50")
    whole, fraction = found.group(1), found.group(2) or ""
    places = exponent(currency)
    if fraction[places:].strip("0"):
        raise AmountNotRepresentable(f"amount {text[:24]!r} has more than {places} decimals for {currency}")
    return int(whole) * 10**places + int(fraction[:places].ljust(places, "0") or "0")
