"""What every server of the stack provides to `up`, `down` and `status`."""

import abc
import signal
from dataclasses import dataclass

from finplat.stack.process import Launch, StackDirs
from finplat.stack.settings import StackSettings
from finplat.stack.tools import Report


@dataclass(frozen=True)
class Port:
    """One TCP port a server binds, what it is for, and the setting that moves it."""

    number: int
    role: str
    setting: str


class Component(abc.ABC):
    """One server: its prerequisites, installation, launch, readiness probe and setup."""

    name: str
    """Short name used for pid and log files and on the command line."""
    stop_signal = signal.SIGTERM
    """What `down` sends first; SIGKILL follows after the stop timeout."""

    def __init__(self, settings: StackSettings, dirs: StackDirs) -> None:
        self.settings = settings
        self.dirs = dirs

    @abc.abstractmethod
    def ports(self) -> list[Port]:
        """Ports that must be free before the server starts."""

    @abc.abstractmethod
    def address(self) -> str:
        """Where clients reach the server, as printed by `up` and `status`."""

    @abc.abstractmethod
    def prerequisites(self) -> list[str]:
        """One line per missing tool, considering what the cache already holds."""

    @abc.abstractmethod
    def install(self, report: Report) -> None:
        """Download or build into the cache, unless already there."""

    @abc.abstractmethod
    def launch(self, report: Report) -> Launch:
        """Prepare config and data dirs; say how to start the server."""

    @abc.abstractmethod
    def probe(self) -> None:
        """Raise StackError unless the server answers real requests."""

    def configure(self, report: Report) -> None:
        """Idempotent setup once the server is ready (topics, rules, onboarding)."""
        del report
