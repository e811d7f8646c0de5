"""Pure price-domain logic: de-duplication, gap detection, candles built from trades."""
