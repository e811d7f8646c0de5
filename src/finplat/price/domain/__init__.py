"""Pure price-domain logic: normalisation, de-duplication, candles. No I/O, no clock."""
