"""The demo's local Bitrix24 portal: one emulator process per Dagster home.

Dagster loads `definitions.py` in many processes (the CLI, the code server, every run worker
and step). They must all talk to one portal, or a deal exported in one step would be missing
in the next. So the first process to load the definitions starts an emulator, detached so it
outlives that process, with its state in SQLite under the Dagster home; every later process
finds it through a port file and reuses it. A file lock keeps two processes that load the
definitions at once from both starting one.

It is the one process the demo leaves running (the UI and later runs use it); it exits by
itself after `IDLE_EXIT_SECONDS` without a request and once `<home>/b24_portal/` is gone,
and `python -m b24_dagster.demo --stop` stops it at once.

Files under `<home>/b24_portal/`: `code` (the webhook code, generated once, mode 0600),
`state.sqlite`, `port`, `pid`, `portal.lock` and `emulator.log` (the emulator's stderr; the
webhook URL it prints on stdout is discarded, since it holds the code).

The library's `Bitrix24Resource` never starts an emulator: only the demo does, here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = REPO_ROOT / ".b24_dagster_home"
WEBHOOK_ENV = "BITRIX24_WEBHOOK_URL"
LOCAL_PORTAL_ENV = "B24_DAGSTER_LOCAL_PORTAL"
"""Prefix of the markers `use_local_portal` sets (`B24_DAGSTER_LOCAL_PORTAL__<variable>`, to
the portal directory), so child processes know the webhook in their environment points at a
local portal (and re-check it) rather than a real one."""

SEED_DEALS = 120
START_TIMEOUT_SECONDS = 30.0
IDLE_EXIT_SECONDS = 1800.0
"""The emulator exits after this long without a request (the next process that loads the
definitions starts it again); it also exits once its directory, i.e. the Dagster home, is gone."""

# Kept so the detached emulator's Popen is not collected (and warned about) while we run.
_STARTED: list[subprocess.Popen[bytes]] = []


def dagster_home() -> Path:
    """The demo's Dagster home: `$DAGSTER_HOME` when set, else `.b24_dagster_home/` in the repo."""
    env = os.environ.get("DAGSTER_HOME")
    return Path(env).expanduser().resolve() if env else DEFAULT_HOME


@dataclass(frozen=True)
class LocalPortal:
    """The files of the local portal that belongs to one Dagster home."""

    directory: Path

    @classmethod
    def for_home(cls, home: Path | None = None) -> LocalPortal:
        """The local portal of `home` (default: `dagster_home()`)."""
        return cls((home or dagster_home()) / "b24_portal")

    @property
    def code_file(self) -> Path:
        return self.directory / "code"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.sqlite"

    @property
    def port_file(self) -> Path:
        return self.directory / "port"

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"

    @property
    def lock_file(self) -> Path:
        return self.directory / "portal.lock"

    @property
    def log_file(self) -> Path:
        return self.directory / "emulator.log"

    def code(self) -> str:
        """The webhook code of this portal, generated on first use and kept in a 0600 file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.code_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.code_file.read_text(encoding="ascii").strip()
        code = secrets.token_hex(8)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(code)
        return code

    def webhook_url(self, port: int) -> str:
        """The webhook URL of the portal listening on `port` (it contains the code: never log it)."""
        return f"http://127.0.0.1:{port}/rest/1/{self.code()}/"

    def port(self) -> int | None:
        """The port recorded by the running emulator, or None."""
        return _read_port(self.port_file)

    def pid(self) -> int | None:
        """The process id of the emulator we started, or None."""
        try:
            return int(self.pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the portal's file lock (blocks while another process holds it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def running_url(self) -> str | None:
        """The webhook URL when our emulator answers on the recorded port, else None."""
        port = self.port()
        if port is None:
            return None
        url = self.webhook_url(port)
        return url if _answers(url) else None

    def ensure(self, *, seed_deals: int = SEED_DEALS, idle_exit_seconds: float = IDLE_EXIT_SECONDS) -> str:
        """Start the emulator unless it already runs; return its webhook URL."""
        with self.locked():
            url = self.running_url()
            if url is not None:
                return url
            return self._start(seed_deals=seed_deals, idle_exit_seconds=idle_exit_seconds)

    def _start(self, *, seed_deals: int, idle_exit_seconds: float) -> str:
        self.code()  # created once, mode 0600; the emulator reads it, so `ps` never shows it
        for stale in (self.port_file, self.pid_file):
            stale.unlink(missing_ok=True)
        args = [
            sys.executable, "-m", "b24_dagster.emulator",
            "--port", "0",
            "--state", str(self.state_file),
            "--port-file", str(self.port_file),
            "--code-file", str(self.code_file),
            # "At least N": a restart on the kept state adds none.
            "--seed-deals", str(seed_deals),
            "--seed-companies", str(seed_deals // 6),
            "--seed-contacts", str(seed_deals // 4),
            # Detached, so it must end by itself: when idle, and when the home is deleted.
            "--idle-exit", str(idle_exit_seconds),
            "--exit-when-missing", str(self.directory),
        ]  # fmt: skip
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=self.directory,
                start_new_session=True,
                close_fds=True,
            )
        _STARTED.append(proc)
        self.pid_file.write_text(str(proc.pid), encoding="ascii")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the local Bitrix24 emulator exited with status {proc.returncode}; "
                    f"see {self.log_file}"
                )
            url = self.running_url()
            if url is not None:
                return url
            time.sleep(0.05)
        _terminate(proc.pid)
        raise RuntimeError(
            f"the local Bitrix24 emulator did not answer within {START_TIMEOUT_SECONDS:.0f} s; "
            f"see {self.log_file}"
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the emulator we started for this home (by its recorded pid); True if one ran."""
        with self.locked():
            pid = self.pid()
            stopped = pid is not None and _terminate(pid, timeout)
            for stale in (self.port_file, self.pid_file):
                stale.unlink(missing_ok=True)
            return stopped


def use_local_portal(
    home: Path | None = None, *, env_var: str = WEBHOOK_ENV, portal: str | None = None
) -> str | None:
    """Point `env_var` at a local portal of the home unless it names a real one.

    `portal` picks one of several local portals (`<home>/portals/<portal>/`); by default the
    home's one portal (`<home>/b24_portal/`). Returns the portal directory when a local portal
    is used, None when the environment already names a webhook of its own. Child processes
    inherit the variable and a marker, and call this again, which re-checks (and if need be
    restarts) the same portal.
    """
    marker = f"{LOCAL_PORTAL_ENV}__{env_var}"
    if os.environ.get(env_var) and not os.environ.get(marker):
        return None
    home = home or dagster_home()
    local = LocalPortal(home / "portals" / portal) if portal else LocalPortal.for_home(home)
    os.environ[env_var] = local.ensure()
    os.environ[marker] = str(local.directory)
    return str(local.directory)


def _read_port(path: Path) -> int | None:
    """The port the emulator wrote (`--port-file`), or None while it has not."""
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _answers(webhook_url: str) -> bool:
    """True when a portal accepts this webhook (so it is ours: another code would be refused)."""
    request = urllib.request.Request(
        webhook_url + "server.time.json",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=2.0) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        # Refused for rate, or the method unknown: still our portal, since the code was accepted.
        return exc.code not in (401, 403)
    except (OSError, ValueError):
        return False


def _is_emulator(pid: int) -> bool:
    """Whether `pid` still runs our emulator (a pid file can outlive its process and be reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    return b"b24_dagster.emulator" in cmdline


def _terminate(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM `pid`, then SIGKILL after `timeout`; True if the process existed."""
    if not _is_emulator(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True
