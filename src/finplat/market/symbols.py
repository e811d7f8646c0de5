"""Exchange symbols as the platform accepts them: Binance's upper-case ASCII names."""

import re

# [A-Z0-9], not \w or \d, which admit non-ASCII characters; a symbol becomes a metric label,
# a Redis key, an InfluxDB tag and a stored row.
SYMBOL = re.compile(r"[A-Z0-9]{1,32}")


def is_symbol(text: str) -> bool:
    """Whether `text` is a whole symbol: 1 to 32 upper-case ASCII letters or digits."""
    return SYMBOL.fullmatch(text) is not None
