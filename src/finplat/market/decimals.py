"""Exact decimal arithmetic and Binance's 8-decimal string format."""

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

# Binance spot prints every price and quantity with 8 decimals ("4261.48000000").
PLACES = 8
_QUANTUM = Decimal(1).scaleb(-PLACES)
# Wide enough for quote volumes of whole months (1e12 with 8 decimals) without rounding.
CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)
ZERO = Decimal(0)
# An exchange decimal as received: ASCII digits with an optional fraction, no sign, exponent or
# spaces (`\d` would take any script's digits, "١٢", which Decimal reads but no consumer
# expects), at most 20 digits each side.
PLAIN_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")
# A plain decimal with at most 8 decimals, re-printed by padding (exact, and much faster).
_PLAIN = re.compile(r"(\d{1,30})(?:\.(\d{0,8}))?")


def to_decimal(text: str) -> Decimal:
    """Parse an exchange decimal string exactly; ValueError when it is not a finite number."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a decimal: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {text!r}")
    return value


def format8(value: Decimal) -> str:
    """Binance's format: fixed point with exactly 8 decimals (banker's rounding beyond)."""
    return format(value.quantize(_QUANTUM, context=CONTEXT), "f")


def normalise8(text: str) -> str:
    """Re-print a decimal string in Binance's format ("2611.5" -> "2611.50000000")."""
    plain = _PLAIN.fullmatch(text)
    if plain is not None:
        return f"{int(plain[1])}.{(plain[2] or '').ljust(PLACES, '0')}"
    return format8(to_decimal(text))
