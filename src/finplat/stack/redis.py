"""Redis from the system package, in the foreground of its own process, persistence off."""

import shutil
from pathlib import Path

import redis

from finplat.stack.component import Component, Port
from finplat.stack.errors import StackError
from finplat.stack.process import Launch
from finplat.stack.tools import Report


class Redis(Component):
    """Redis on loopback; the latest-price cache needs no durability in development."""

    name = "redis"

    def ports(self) -> list[Port]:
        return [Port(self.settings.redis_port, "Redis", "FINPLAT_STACK_REDIS_PORT")]

    def address(self) -> str:
        return f"redis://{self.settings.host}:{self.settings.redis_port}/0"

    def _executable(self) -> str | None:
        configured = self.settings.redis_server
        if "/" in configured:
            return configured if Path(configured).is_file() else None
        return shutil.which(configured)

    def prerequisites(self) -> list[str]:
        if self._executable() is not None:
            return []
        return [
            f"{self.settings.redis_server} (the Redis server): not found; "
            "apt-get install redis-server, or set FINPLAT_STACK_REDIS_SERVER"
        ]

    def install(self, report: Report) -> None:
        del report  # the system package is the installation

    def launch(self, report: Report) -> Launch:
        executable = self._executable()
        if executable is None:
            raise StackError(f"{self.settings.redis_server} not found")
        home = self.dirs.component(self.name)
        argv = [
            executable,
            "--bind",
            self.settings.host,
            "--port",
            str(self.settings.redis_port),
            "--dir",
            str(home),
            # Runs under our own supervision: foreground, log to stdout (the log file).
            "--daemonize",
            "no",
            "--logfile",
            "",
            # Persistence off: no RDB snapshots, no append-only file.
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        return Launch(argv=argv, cwd=home)

    def probe(self) -> None:
        client = redis.Redis(
            host=self.settings.host,
            port=self.settings.redis_port,
            socket_timeout=self.settings.probe_timeout_s,
            socket_connect_timeout=self.settings.probe_timeout_s,
        )
        try:
            if not client.ping():
                raise StackError("Redis did not answer PING")
        except redis.RedisError as exc:
            raise StackError(f"Redis not answering: {exc}") from exc
        finally:
            client.close()
