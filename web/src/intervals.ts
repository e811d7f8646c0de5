// Candle intervals the page offers, in Binance notation as the gateway takes them.

const MINUTE_MS = 60_000;

export const INTERVAL_MS: Record<string, number> = {
  "1m": MINUTE_MS,
  "5m": 5 * MINUTE_MS,
  "15m": 15 * MINUTE_MS,
  "30m": 30 * MINUTE_MS,
  "1h": 60 * MINUTE_MS,
  "4h": 240 * MINUTE_MS,
  "1d": 1440 * MINUTE_MS,
};

export const INTERVALS = Object.keys(INTERVAL_MS);

/**
 * Open time of the candle a price at `timestampMs` belongs to. A closed kline's price carries
 * the kline's end (its next candle's open), a trade its own time: one millisecond back puts
 * both into the candle they close or fall in.
 */
export function candleOpen(timestampMs: number, interval: string): number {
  const size = INTERVAL_MS[interval] ?? MINUTE_MS;
  return Math.floor((timestampMs - 1) / size) * size;
}
