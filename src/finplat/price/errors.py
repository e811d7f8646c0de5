"""The base of the price service's own exceptions, so its command line catches one type."""


class PriceError(Exception):
    """Base of every error the price service raises on purpose."""
