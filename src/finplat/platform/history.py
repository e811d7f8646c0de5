"""Where the replay starts and which history `up` loads before it, as functions of the clock."""

from datetime import UTC, datetime, timedelta

from finplat.market.intervals import DAY_MS, MINUTE_MS
from finplat.platform.settings import PlatformSettings
from finplat.replay.settings import ReplaySettings

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def utc_text(ms: int) -> str:
    """`ms` as the UTC time `finplat price backfill --start/--end` accepts."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(_TIME_FORMAT)


def replay_start_ms(platform: PlatformSettings, replay: ReplaySettings, now_ms: int) -> int | None:
    """Where the replay's market clock starts; None leaves it to the replay (its data's start).

    `history_days` into the data, plus a point of a `replay_cycle_days` cycle that advances with
    the wall clock at the replay's speed: a restart continues the market rather than repeating
    it, and there is always a day of REST history before the start.
    """
    if replay.start_ms is not None:
        return replay.start_ms
    if replay.kline_first_day is None:
        return None
    first = datetime(*replay.kline_first_day.timetuple()[:3], tzinfo=UTC)
    first_ms = int((first + timedelta(days=platform.history_days)).timestamp() * 1000)
    offset = int(now_ms * platform.replay_speed) % (platform.replay_cycle_days * DAY_MS)
    return first_ms + offset - offset % MINUTE_MS


def history_window(
    platform: PlatformSettings, replay: ReplaySettings, now_ms: int
) -> tuple[int, int] | None:
    """[start, end) ms of the 1m history to backfill: the days before the replay starts, or
    before now when live."""
    if platform.history_days == 0:
        return None
    span_ms = platform.history_days * DAY_MS
    if platform.live:
        end = now_ms - now_ms % MINUTE_MS
        return end - span_ms, end
    start = replay_start_ms(platform, replay, now_ms)
    return None if start is None else (start - span_ms, start)
