"""Look-ahead check: a strategy's targets on prefixes of the bars against those on all of them.

A strategy decides the target of bar t at its close, from bars 0..t only; so cutting off the
bars after t must leave the target of t, and of every bar before it, unchanged. A bar whose
target changes when the future is cut off was decided with bars it could not yet have seen.

Each prefix is compared on all of its bars, not only its last one: a strategy reading the
data's final bar (a normalisation over the whole series, say) changes the whole prefix, while one
reading the next bar changes only the prefix's last bar, the most sensitive one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies import Signal

# Where prefixes end by default: every 10th bar, and 100 random bars between them.
DEFAULT_EVERY = 10
DEFAULT_RANDOM = 100
# Differing bars a report lists by default.
DEFAULT_SHOWN = 10

SignalOf = Callable[[Bars], Signal]
"""A strategy with its parameters bound: bars in, one target per bar out."""

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Difference:
    """A bar whose target on a prefix differs from its target on all the bars."""

    bar: int
    open_time_ms: int
    full_target: int
    prefix_target: int
    prefix_end: int
    """Index of the last bar of the shortest checked prefix that changed this bar."""


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """What the check found: counts, and the earliest differing bars in time order."""

    bar_count: int
    prefixes_checked: int
    differing_prefixes: int
    differing_bars: int
    first: tuple[Difference, ...]

    @property
    def clean(self) -> bool:
        return self.differing_bars == 0


def cut_points(bar_count: int, every: int, random_count: int, seed: int) -> IntArray:
    """Prefix lengths to check, sorted and distinct: those ending at bars 0, every, 2*every...,
    and ``random_count`` ending at random bars (seeded, so a run can be repeated).

    The random ones land between the regular ones, where a look-ahead that shows on some bars
    only (every other bar, say) would escape a regular step. The full length is never among
    them: it is the reference.
    """
    if every < 1 or random_count < 0:
        raise ValueError(f"every must be >= 1 and random_count >= 0, got {every}, {random_count}")
    last = bar_count - 1  # a proper prefix ends at one of bars 0..last-1
    if last < 1:
        return np.zeros(0, dtype=np.int64)
    regular = np.arange(0, last, every, dtype=np.int64)
    drawn = np.random.default_rng(seed).integers(0, last, size=random_count, dtype=np.int64)
    lengths: IntArray = np.union1d(regular, drawn) + 1
    return lengths


def check_lookahead(
    bars: Bars, signal: SignalOf, prefix_lengths: IntArray, limit: int = 10
) -> LookaheadReport:
    """Compare ``signal`` on each prefix of ``bars`` (lengths 1..len(bars)-1, as
    ``cut_points`` gives them) with ``signal`` on all of them.

    ``first`` holds up to ``limit`` differing bars, earliest first, each with the shortest
    prefix that changed it.
    """
    full = _targets(signal, bars)
    n = len(bars)
    # Per bar, the end of the first prefix that changed it (-1: none yet) and its target there;
    # two arrays keep memory at O(bars) however many differences the prefixes hold.
    first_end = np.full(n, -1, dtype=np.int64)
    prefix_target = np.zeros(n, dtype=np.int64)
    differing_prefixes = 0
    for length in sorted(int(m) for m in prefix_lengths):
        targets = _targets(signal, bars.slice(0, length))
        changed = np.flatnonzero(targets != full[:length])
        if changed.size == 0:
            continue
        differing_prefixes += 1
        new = changed[first_end[changed] < 0]
        first_end[new] = length - 1
        prefix_target[new] = targets[new]
    differing = np.flatnonzero(first_end >= 0)
    first = tuple(
        Difference(
            bar=int(i),
            open_time_ms=int(bars.open_time_ms[i]),
            full_target=int(full[i]),
            prefix_target=int(prefix_target[i]),
            prefix_end=int(first_end[i]),
        )
        for i in differing[:limit]
    )
    return LookaheadReport(n, len(prefix_lengths), differing_prefixes, int(differing.size), first)


def _targets(signal: SignalOf, bars: Bars) -> Signal:
    targets = signal(bars)
    # A wrong length would broadcast (length 1) or fail far from its cause.
    if targets.shape != (len(bars),):
        raise ValueError(f"signal gave shape {targets.shape} for {len(bars)} bars")
    return targets
