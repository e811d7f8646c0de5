"""Shared fixtures: the real Binance data files (read in place, never copied) and a fake clock."""

import pytest


class FakeClock:
    """A clock that only moves when slept on or told to; records every sleep."""

    def __init__(self, wall_ms: int = 1_700_000_000_000) -> None:
        self.now_s = 0.0
        self.wall_ms = wall_ms
        self.sleeps: list[float] = []

    def time_ms(self) -> int:
        return self.wall_ms + int(self.now_s * 1000)

    def monotonic(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += max(seconds, 0.0)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
