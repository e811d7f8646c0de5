"""PostgreSQL of the stack without a server: its binaries, its initdb and server command lines,
and the directories the postgres user must be able to enter."""

import os
import pwd
import shlex
import tempfile
from pathlib import Path

import pytest
from pydantic import SecretStr

from finplat.stack.errors import StackError
from finplat.stack.postgres import Postgres, find_bin_dir, unreachable_dirs
from finplat.stack.process import StackDirs
from finplat.stack.settings import StackSettings

# Stands in for initdb: records its arguments and the password file it was given, then leaves
# what a real initdb leaves for the next start to see.
_FAKE_INITDB = """#!/bin/sh
printf '%s\\n' "$*" >> "$(dirname "$0")/initdb.calls"
for arg; do case "$arg" in --pwfile=*) cp "${arg#--pwfile=}" "$(dirname "$0")/pwfile.seen";;
esac; done
mkdir -p "$2" && echo 15 > "$2/PG_VERSION"
"""
_NOBODY_UID = 2**31 - 7
_NOBODY_GID = 2**31 - 11


def _fake_bin_dir(path: Path, programs: tuple[str, ...] = ("initdb", "postgres")) -> Path:
    path.mkdir(parents=True)
    for program in programs:
        (path / program).write_text(_FAKE_INITDB if program == "initdb" else "#!/bin/sh\n")
        (path / program).chmod(0o755)
    return path


def _postgres(tmp_path: Path, **overrides: object) -> Postgres:
    settings = StackSettings.model_validate(
        {"data_dir": tmp_path / "stack", "postgres_port": 25432, **overrides}
    )
    return Postgres(settings, StackDirs(settings.data_dir))


def test_the_newest_installed_version_with_both_programs_is_used(tmp_path: Path) -> None:
    installed = tmp_path / "postgresql"
    for version in ("9.6", "13", "15"):
        _fake_bin_dir(installed / version / "bin")
    _fake_bin_dir(installed / "16" / "bin", programs=("initdb",))
    (installed / "common").mkdir()

    assert find_bin_dir(None, installed) == installed / "15" / "bin"
    assert find_bin_dir(None, tmp_path / "nothing-installed") is None


def test_a_configured_bin_dir_is_used_alone(tmp_path: Path) -> None:
    configured = _fake_bin_dir(tmp_path / "bin")
    incomplete = _fake_bin_dir(tmp_path / "incomplete", programs=("postgres",))

    assert find_bin_dir(configured, tmp_path / "nothing-installed") == configured
    assert find_bin_dir(incomplete, tmp_path / "nothing-installed") is None


def test_a_missing_server_names_the_package(tmp_path: Path) -> None:
    postgres = _postgres(tmp_path, postgres_bin_dir=tmp_path / "no-such-dir")

    assert any("apt-get install postgresql" in line for line in postgres.prerequisites())


def test_the_first_start_creates_the_cluster_and_the_server_runs_in_the_foreground(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # not root: no user to switch to
    bin_dir = _fake_bin_dir(tmp_path / "bin")
    postgres = _postgres(
        tmp_path, postgres_bin_dir=bin_dir, postgres_password=SecretStr("s3cret pass")
    )
    home = tmp_path / "stack" / "postgres"
    reported: list[str] = []

    launch = postgres.launch(reported.append)
    postgres.launch(reported.append)

    initdb_calls = (bin_dir / "initdb.calls").read_text().splitlines()
    assert len(initdb_calls) == 1
    assert shlex.split(initdb_calls[0]) == [
        "-D",
        str(home / "data"),
        "-U",
        "finplat",
        f"--pwfile={home / 'initdb.pwfile'}",
        "-A",
        "scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--data-checksums",
        "--no-instructions",
    ]
    assert "s3cret" not in initdb_calls[0]
    assert (bin_dir / "pwfile.seen").read_text() == "s3cret pass\n"
    assert not (home / "initdb.pwfile").exists()
    assert reported == [f"creating the database cluster in {home / 'data'} (first start)"]
    assert launch.user is None
    assert launch.cwd == home
    assert list(launch.argv) == [
        str(bin_dir / "postgres"),
        "-D",
        str(home / "data"),
        "-p",
        "25432",
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={home}",
        "-c",
        "logging_collector=off",
        "-c",
        "log_destination=stderr",
        "-c",
        "shared_buffers=64MB",
        "-c",
        "max_connections=100",
        "-c",
        "fsync=on",
    ]


def _as_root_with_postgres_home(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> list[tuple[Path, int, int]]:
    """Pretend to be root with a postgres user whose home is `home`; chown calls are recorded."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    account = pwd.struct_passwd(
        ("postgres", "x", _NOBODY_UID, _NOBODY_GID, "", str(home), "/bin/false")
    )
    monkeypatch.setattr(pwd, "getpwnam", lambda name: account)
    chowned: list[tuple[Path, int, int]] = []
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: chowned.append((Path(path), uid, gid)))
    return chowned


def _private_dir(tmp_path: Path) -> Path:
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    return private


def test_as_root_a_data_dir_the_postgres_user_cannot_enter_moves_the_cluster_to_its_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pytest's tmp_path lies under directories only their owner may enter.
    with tempfile.TemporaryDirectory(prefix="finplat-pg-") as name:
        os.chmod(name, 0o711)
        _cluster_moves_home(Path(name), monkeypatch)


def _cluster_moves_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "postgres-home"
    home.mkdir()
    home.chmod(0o711)
    chowned = _as_root_with_postgres_home(monkeypatch, home)
    private = _private_dir(tmp_path)
    postgres = _postgres(tmp_path, data_dir=private)
    said: list[str] = []

    cluster = postgres._home(pwd.getpwnam("postgres"), said.append)

    assert cluster.parent == home / "finplat-stack"
    assert cluster.is_dir()
    assert not (private / "postgres").exists()
    assert (cluster, _NOBODY_UID, _NOBODY_GID) in chowned
    assert said == [f"postgres cannot enter {private}: cluster kept in {cluster}"]
    # The same data dir finds the same cluster again.
    assert postgres._home(pwd.getpwnam("postgres"), said.append) == cluster


def test_as_root_a_cluster_the_postgres_user_can_reach_nowhere_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = _private_dir(tmp_path)
    (private / "postgres-home").mkdir()
    _as_root_with_postgres_home(monkeypatch, private / "postgres-home")
    postgres = _postgres(
        tmp_path, data_dir=private, postgres_bin_dir=_fake_bin_dir(tmp_path / "bin")
    )

    with pytest.raises(StackError, match="may enter neither") as refused:
        postgres.launch(lambda line: None)

    assert f"neither {private} nor its home: chmod o+x " in str(refused.value)
    assert str(refused.value).endswith(f"{private}, or set FINPLAT_STACK_DATA_DIR")
    assert not (private / "postgres" / "data").exists()


def test_a_directory_is_entered_by_its_owner_its_group_or_everyone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    grouped = shared / "grouped"
    private = grouped / "private"
    for directory, mode in ((shared, 0o711), (grouped, 0o710), (private, 0o700)):
        directory.mkdir()
        directory.chmod(mode)  # mkdir's own mode is subject to the umask
    owner, group = private.stat().st_uid, private.stat().st_gid

    def blocked(uid: int, gids: set[int]) -> list[Path]:
        # Only the tree of this test: pytest's own directories are private to their owner.
        return [d for d in unreachable_dirs(private, uid, gids) if shared in (d, *d.parents)]

    assert unreachable_dirs(private, owner, set()) == []
    assert blocked(_NOBODY_UID, {group}) == [private]
    assert blocked(_NOBODY_UID, set()) == [grouped, private]
