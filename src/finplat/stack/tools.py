"""External programs the stack relies on: finding them, checking Java versions, running Maven."""

import functools
import logging
import os
import re
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from finplat.stack.errors import StackError

logger = logging.getLogger(__name__)

Report = Callable[[str], None]
"""Receives one human-readable progress line (download, build, start)."""

_INSTALL_HINTS = {
    "mvn": "apt-get install maven",
    "go": "install Go 1.23+ (go.dev/dl, or golang-go if new enough)",
    "cargo": "install Rust with rustup, then 'rustup default stable'",
    "pkg-config": "apt-get install pkg-config",
    "gcc": "apt-get install gcc",
    "redis-server": "apt-get install redis-server",
}
_JVM_DIR = Path("/usr/lib/jvm")
_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')
_TAIL_LINES = 40
_DOWNLOAD_RE = re.compile(
    r"\[INFO\] (?P<verb>Downloading|Downloaded) from \S+: \S+/(?P<file>[^/\s]+)(?P<rest>.*)$"
)

# Two Maven processes writing ~/.m2 at once can corrupt a download (Maven 3.8 has no repository
# locking), and Kafka and the registry are installed in parallel.
_MAVEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class Java:
    """A java launcher and the feature release it runs (17, 21, 25, ...)."""

    executable: Path
    major: int


def missing_tool(name: str, purpose: str) -> str | None:
    """A line for the prerequisites message when `name` is not on PATH, else None."""
    if shutil.which(name):
        return None
    hint = _INSTALL_HINTS.get(name, f"install {name}")
    return f"{name} ({purpose}): {hint}"


@functools.cache
def java_major(executable: Path) -> int | None:
    """Feature release of a java launcher, or None when it does not run."""
    try:
        done = subprocess.run(
            [str(executable), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        logger.debug("cannot run %s: %s", executable, exc)
        return None
    match = _VERSION_RE.search(done.stderr)
    if done.returncode != 0 or match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2) or 0) if major == 1 else major


def _java_candidates(java_home: Path | None) -> list[Path]:
    if java_home is not None:
        return [java_home / "bin" / "java"]
    candidates: list[Path] = []
    if env_home := os.environ.get("JAVA_HOME"):
        candidates.append(Path(env_home) / "bin" / "java")
    if on_path := shutil.which("java"):
        candidates.append(Path(on_path))
    if _JVM_DIR.is_dir():
        candidates.extend(sorted(_JVM_DIR.glob("*/bin/java"), reverse=True))
    unique: dict[Path, Path] = {}
    for candidate in candidates:
        if candidate.exists():
            unique.setdefault(candidate.resolve(), candidate)
    return list(unique.values())


def find_java(minimum: int, java_home: Path | None) -> Java | None:
    """The first JDK at least `minimum`: java_home if given, else JAVA_HOME, PATH, /usr/lib/jvm."""
    for candidate in _java_candidates(java_home):
        major = java_major(candidate)
        if major is not None and major >= minimum:
            return Java(candidate, major)
    return None


def missing_java(minimum: int, java_home: Path | None, purpose: str, setting: str) -> str | None:
    """A line for the prerequisites message when no JDK `minimum`+ is found, else None."""
    if find_java(minimum, java_home) is not None:
        return None
    found = [
        f"Java {major} at {path}"
        for path in _java_candidates(java_home)
        if (major := java_major(path)) is not None
    ]
    seen = f"found only {', '.join(found)}" if found else "no java found"
    if java_home is not None:
        return (
            f"Java {minimum}+ ({purpose}): {setting}={java_home}: {seen}; "
            f"point it at a JDK {minimum}+"
        )
    return (
        f"Java {minimum}+ ({purpose}): {seen}; install a JDK {minimum}+ "
        f"(on JAVA_HOME, PATH or in /usr/lib/jvm) or set {setting}"
    )


def run_streaming(
    argv: Sequence[str],
    *,
    what: str,
    report: Report,
    show: Callable[[str], str | None],
    capture_stdout: bool = False,
    cwd: Path | None = None,
) -> str:
    """Run a download or build step, reporting what `show` makes of each output line.

    With `capture_stdout`, only stderr is streamed and stdout is returned (a script's result);
    otherwise both are streamed and "" is returned. Raises StackError with the last lines of
    output on failure.
    """
    logger.info("running %s", " ".join(argv), extra={"step": what})
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT,
            text=True,
        )
    except OSError as exc:
        raise StackError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    streamed = process.stderr if capture_stdout else process.stdout
    assert streamed is not None
    for raw in streamed:
        line = raw.rstrip()
        tail.append(line)
        shown = show(line)
        if shown is not None:
            report(shown)
    # The captured stdout is small (one path from a build script): the pipe buffer holds it
    # until stderr is drained.
    out = process.stdout.read() if capture_stdout and process.stdout is not None else ""
    code = process.wait()
    if code != 0:
        last = "\n".join(f"    {line}" for line in [*tail, *out.splitlines()][-_TAIL_LINES:])
        raise StackError(f"{what} failed (exit {code}); last output:\n{last}")
    return out


def _maven_progress(line: str) -> str | None:
    """Artifact downloads (not the many small POMs) and errors, in short form."""
    if line.startswith("[ERROR]"):
        return line
    match = _DOWNLOAD_RE.match(line)
    if match is None or match.group("file").endswith((".pom", ".xml", ".sha1")):
        return None
    # Batch mode shows no progress bar: announce only big archives before they arrive.
    if match.group("verb") == "Downloading" and not match.group("file").endswith(".tar.gz"):
        return None
    return f"{match.group('verb').lower()} {match.group('file')}{match.group('rest')}"


def run_maven(args: Sequence[str], *, what: str, report: Report, cwd: Path) -> None:
    """Run Maven in batch mode, reporting each artifact download as progress."""
    with _MAVEN_LOCK:
        run_streaming(["mvn", "-B", *args], what=what, report=report, show=_maven_progress, cwd=cwd)
