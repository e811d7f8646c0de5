"""Sliding-window rate limits, as Binance counts control messages and new connections."""

from collections import deque

from finplat.core.clock import Clock


class SlidingWindowLimiter:
    """At most `max_events` in any `window_s`: `acquire` waits until one more is allowed.

    Binance counts WebSocket control messages (5 per second per connection) and new
    connections (300 per 5 minutes per IP) this way and disconnects or bans beyond.
    """

    def __init__(self, max_events: int, window_s: float, clock: Clock) -> None:
        if max_events < 1 or window_s <= 0:
            raise ValueError("max_events must be >= 1 and window_s > 0")
        self._max = max_events
        self._window = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self.waits = 0

    async def acquire(self) -> None:
        while True:
            now = self._clock.monotonic()
            while self._times and self._times[0] <= now - self._window:
                self._times.popleft()
            if len(self._times) < self._max:
                self._times.append(now)
                return
            self.waits += 1
            await self._clock.sleep(self._times[0] + self._window - now)
