"""PostgreSQL from the system package, in a cluster of its own under the stack's data dir.

The first start creates the cluster with `initdb` (password authentication everywhere, the
superuser and password from the settings); every start runs `postgres` in the foreground on
`host` and its own port, its Unix socket in the component dir. Debian's own cluster and its
service are not involved. PostgreSQL refuses to run as root: as root, both programs run as the
`postgres` system user of the package, and when that user cannot enter the stack's data dir
(a clone inside a `mktemp -d` directory, mode 0700), the cluster lives in the user's own home
instead, under a name derived from the data dir.
"""

import hashlib
import math
import os
import pwd
import shutil
import signal
import stat
import subprocess
from collections.abc import Collection
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from finplat.stack.component import Component, Port
from finplat.stack.errors import StackError
from finplat.stack.process import Launch
from finplat.stack.tools import Report

_INSTALLED = Path("/usr/lib/postgresql")
_PROGRAMS = ("initdb", "postgres")
_SYSTEM_USER = "postgres"
_AUTH = "scram-sha-256"
# Small enough for a laptop beside Kafka and InfluxDB, enough for a development database.
_SHARED_BUFFERS = "64MB"
_MAX_CONNECTIONS = 100
# sun_path of a Unix socket holds 108 bytes with the terminating NUL; PostgreSQL will not start
# without its socket.
_MAX_SOCKET_PATH = 107


def find_bin_dir(configured: Path | None, installed: Path = _INSTALLED) -> Path | None:
    """`configured` if it holds initdb and postgres, else when unset the newest version's."""
    if configured is not None:
        return configured if _has_programs(configured) else None
    versions = [
        (_version(entry.name), entry / "bin")
        for entry in (installed.iterdir() if installed.is_dir() else [])
        if _version(entry.name) is not None and _has_programs(entry / "bin")
    ]
    return max(versions)[1] if versions else None


def _version(name: str) -> tuple[int, ...] | None:
    # Numbers, not strings: 9.6 is older than 15.
    parts = name.split(".")
    return tuple(map(int, parts)) if all(part.isdigit() for part in parts) else None


def _has_programs(bin_dir: Path) -> bool:
    return all(
        (bin_dir / program).is_file() and os.access(bin_dir / program, os.X_OK)
        for program in _PROGRAMS
    )


def unreachable_dirs(path: Path, uid: int, gids: Collection[int]) -> list[Path]:
    """Directories from / down to `path` that `uid` with groups `gids` may not enter."""
    blocked = []
    for directory in [*reversed(path.parents), path]:
        info = directory.stat()
        # As the kernel decides (ACLs aside): the owner's bit, else the group's, else others'.
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            blocked.append(directory)
    return blocked


class Postgres(Component):
    """PostgreSQL on loopback with the database, user and password from the settings."""

    name = "postgres"
    # A fast shutdown: SIGTERM is PostgreSQL's "smart" one, which waits for every client
    # to leave, and a service still connected would hold `down` until SIGKILL.
    stop_signal = signal.SIGINT

    def ports(self) -> list[Port]:
        return [Port(self.settings.postgres_port, "PostgreSQL", "FINPLAT_STACK_POSTGRES_PORT")]

    def address(self) -> str:
        s = self.settings
        server = f"{s.host}:{s.postgres_port}"
        return f"postgresql://{s.postgres_username}@{server}/{s.postgres_database}"

    def prerequisites(self) -> list[str]:
        problems = []
        if find_bin_dir(self.settings.postgres_bin_dir) is None:
            where = self.settings.postgres_bin_dir or f"{_INSTALLED}/*/bin"
            problems.append(
                f"PostgreSQL server (initdb and postgres): not found in {where}; "
                "apt-get install postgresql, or set FINPLAT_STACK_POSTGRES_BIN_DIR"
            )
        if os.geteuid() == 0 and _system_account() is None:
            problems.append(
                f"PostgreSQL refuses to run as root and there is no {_SYSTEM_USER!r} system user "
                "to run it as: apt-get install postgresql creates it"
            )
        return problems

    def install(self, report: Report) -> None:
        del report  # the system package is the installation

    def launch(self, report: Report) -> Launch:
        s = self.settings
        bin_dir = find_bin_dir(s.postgres_bin_dir)
        if bin_dir is None:
            raise StackError(
                f"initdb and postgres not found (postgres_bin_dir {s.postgres_bin_dir})"
            )
        account = None
        if os.geteuid() == 0:
            account = _system_account()
            if account is None:
                raise StackError(f"no {_SYSTEM_USER!r} system user to run PostgreSQL as")
        home = self._home(account, report)
        socket = home / f".s.PGSQL.{s.postgres_port}"
        if len(os.fsencode(socket)) > _MAX_SOCKET_PATH:
            raise StackError(
                f"PostgreSQL's socket path {socket} is longer than {_MAX_SOCKET_PATH} bytes; "
                "set FINPLAT_STACK_DATA_DIR to a shorter path"
            )
        data = home / "data"
        if not (data / "PG_VERSION").is_file():
            self._initdb(bin_dir, home, data, account, report)
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(s.postgres_port),
            "-c",
            f"listen_addresses={s.host}",
            # Our own socket dir: Debian's /var/run/postgresql belongs to its cluster.
            "-c",
            f"unix_socket_directories={home}",
            # Under our supervision: the log goes to stderr, which is the component's log file.
            "-c",
            "logging_collector=off",
            "-c",
            "log_destination=stderr",
            "-c",
            f"shared_buffers={_SHARED_BUFFERS}",
            "-c",
            f"max_connections={_MAX_CONNECTIONS}",
            # The default, stated on the command line so no configuration file can turn it off:
            # this database keeps results.
            "-c",
            "fsync=on",
        ]
        return Launch(argv=argv, cwd=home, user=None if account is None else account.pw_name)

    def _home(self, account: pwd.struct_passwd | None, report: Report) -> Path:
        """The cluster's directory, owned by whoever runs the server."""
        if account is None:
            return self.dirs.component(self.name)
        # The server runs with the user's primary group only (see `Launch.user`).
        groups = {account.pw_gid}
        self.dirs.root.mkdir(parents=True, exist_ok=True)
        if not unreachable_dirs(self.dirs.root.resolve(), account.pw_uid, groups):
            home = self.dirs.component(self.name)
        else:
            digest = hashlib.sha256(str(self.dirs.root.resolve()).encode()).hexdigest()[:16]
            home = Path(account.pw_dir) / "finplat-stack" / digest
            blocked = unreachable_dirs(Path(account.pw_dir), account.pw_uid, groups)
            if blocked:
                raise StackError(
                    f"PostgreSQL runs as the {account.pw_name!r} user (it refuses root), which "
                    f"may enter neither {self.dirs.root} nor its home: chmod o+x "
                    f"{', '.join(map(str, blocked))}, or set FINPLAT_STACK_DATA_DIR"
                )
            report(f"{account.pw_name} cannot enter {self.dirs.root}: cluster kept in {home}")
            home.mkdir(parents=True, exist_ok=True)
            os.chown(home.parent, account.pw_uid, account.pw_gid)
        os.chown(home, account.pw_uid, account.pw_gid)
        return home

    def _initdb(
        self,
        bin_dir: Path,
        home: Path,
        data: Path,
        account: pwd.struct_passwd | None,
        report: Report,
    ) -> None:
        s = self.settings
        report(f"creating the database cluster in {data} (first start)")
        # initdb refuses a non-empty directory; one without PG_VERSION is an interrupted initdb.
        if data.exists():
            shutil.rmtree(data)
        # The password reaches initdb through a file only we and it can read, never an argv.
        pwfile = home / "initdb.pwfile"
        pwfile.unlink(missing_ok=True)
        descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(s.postgres_password.get_secret_value() + "\n")
            if account is not None:
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            done = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    s.postgres_username,
                    f"--pwfile={pwfile}",
                    "-A",
                    _AUTH,
                    "-E",
                    "UTF8",
                    "--locale=C",
                    # Page checksums: corruption is reported instead of read back as results.
                    "--data-checksums",
                    "--no-instructions",
                ],
                cwd=home,
                capture_output=True,
                text=True,
                timeout=s.start_timeout_s,
                check=False,
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [],
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise StackError(
                f"initdb failed with code {done.returncode}:\n{done.stdout}{done.stderr}"
            )

    def _connect(self, dbname: str) -> psycopg.Connection[TupleRow]:
        s = self.settings
        return psycopg.connect(
            host=s.host,
            port=s.postgres_port,
            user=s.postgres_username,
            password=s.postgres_password.get_secret_value(),
            dbname=dbname,
            # libpq takes whole seconds.
            connect_timeout=max(1, math.ceil(s.probe_timeout_s)),
            autocommit=True,
        )

    def probe(self) -> None:
        try:
            # The maintenance database: the configured one exists only after `configure`.
            with self._connect("postgres") as connection:
                connection.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            raise StackError(f"PostgreSQL not answering: {exc}") from exc

    def configure(self, report: Report) -> None:
        s = self.settings
        try:
            with self._connect("postgres") as connection:
                exists = connection.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (s.postgres_database,)
                ).fetchone()
                if exists is None:
                    report(f"creating database {s.postgres_database}")
                    connection.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(s.postgres_database),
                            sql.Identifier(s.postgres_username),
                        )
                    )
        except psycopg.Error as exc:
            raise StackError(f"creating database {s.postgres_database!r}: {exc}") from exc


def _system_account() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        return None
