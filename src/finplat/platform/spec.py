"""One child process of the platform, as the supervisor starts and probes it."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from finplat.stack.component import Port


@dataclass(frozen=True)
class ChildSpec:
    """One process: how to start it, the ports it binds and when it counts as ready."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ports: Sequence[Port] = ()
    probe: Callable[[], None] | None = None
    """Raises probes.NotReadyError until the process is ready; None for a one-shot job, which
    is ready once it has exited with code 0."""
    prepare: Callable[[], None] | None = None
    """Run just before the process is spawned (to write a file it reads); raises PlatformError."""
