"""Faults injected on command: dropped connections, malformed frames, stalls, REST limits."""

import itertools
import logging
from typing import Protocol

from finplat.core.clock import Clock

logger = logging.getLogger(__name__)

# Each is refused by a Binance client's decoder for a different reason.
MALFORMED_FRAMES = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":17',  # truncated JSON
    b"not json at all",
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":"x","p":1.5}}',
    b"[1,2,3]",
)


class FaultTarget(Protocol):
    """A client connection faults can be applied to."""

    def inject(self, frame: bytes) -> None: ...

    def abort(self) -> None: ...


class Faults:
    """The switchboard; the HTTP control endpoints and in-process tests both use it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.targets: set[FaultTarget] = set()
        self._resume_at = 0.0
        self._malformed = itertools.cycle(MALFORMED_FRAMES)
        self._rest_failures: list[tuple[int, float]] = []
        self.dropped = 0
        self.malformed_sent = 0

    def drop(self) -> int:
        """Abort every client connection (no close handshake, like a network failure)."""
        targets = list(self.targets)
        for target in targets:
            target.abort()
        self.dropped += len(targets)
        logger.info("dropped connections", extra={"connections": len(targets)})
        return len(targets)

    def malformed(self, count: int) -> int:
        """Send `count` malformed frames to every client, between its regular frames."""
        for target in list(self.targets):
            for _ in range(count):
                target.inject(next(self._malformed))
                self.malformed_sent += 1
        return len(self.targets)

    def shutdown_notice(self, event_time_ms: int) -> int:
        """Announce a server shutdown to every client, as Binance does before going down."""
        frame = b'{"e":"serverShutdown","E":%d}' % event_time_ms
        for target in list(self.targets):
            target.inject(frame)
        return len(self.targets)

    def stall(self, seconds: float) -> None:
        """Send nothing to anyone for `seconds` (frames queue up meanwhile)."""
        self._resume_at = max(self._resume_at, self._clock.monotonic() + seconds)

    def rest_failures(self, count: int, status: int = 429, retry_after_s: float = 1.0) -> None:
        """Answer the next `count` REST requests with `status` and a Retry-After header."""
        self._rest_failures.extend([(status, retry_after_s)] * count)

    def next_rest_failure(self) -> tuple[int, float] | None:
        return self._rest_failures.pop(0) if self._rest_failures else None

    async def wait_unstalled(self) -> None:
        while (remaining := self._resume_at - self._clock.monotonic()) > 0:
            await self._clock.sleep(remaining)
