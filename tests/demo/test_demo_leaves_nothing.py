"""The demo leaves nothing behind unannounced: its local portal ends by itself and says how to
stop it, every hint it prints runs as printed, Ctrl-C on the UI is quiet, and the dagster/dg
commands in the repository find the demo's Dagster home."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from b24_dagster.demo._home import point_dagster_cli_at_home
from b24_dagster.demo._local_portal import LocalPortal
from tests.conftest import wait_for
from tests.demo.helpers import BIN, REPO, clean_env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:  # a zombie has ended too
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _reap(pid: int) -> bool:
    """True once `pid` has ended (reaped if it is our child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not _alive(pid)


def test_local_portal_exits_when_idle_and_when_its_home_is_gone(tmp_path: Path) -> None:
    idle = LocalPortal.for_home(tmp_path / "idle")
    idle.ensure(seed_deals=1, idle_exit_seconds=1.0)
    pid = idle.pid()
    assert pid and _alive(pid)
    wait_for(lambda: _reap(pid), "the idle emulator to exit", timeout=20)
    assert "no request for" in idle.log_file.read_text()

    home = tmp_path / "gone"
    kept = LocalPortal.for_home(home)
    kept.ensure(seed_deals=1)
    pid = kept.pid()
    assert pid and _alive(pid)
    try:
        shutil.rmtree(home)
        wait_for(lambda: _reap(pid), "the emulator of a deleted home to exit", timeout=20)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)


def test_every_hint_the_demo_prints_works_as_printed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(home)
    env.pop("DAGSTER_HOME")
    database = home / "data" / "dbt" / "b24_examples.duckdb"
    database.parent.mkdir(parents=True)
    import duckdb

    with duckdb.connect(str(database)) as con:  # the mart the hint queries, as dbt builds it
        con.execute("create table deals_by_stage_month as select 'NEW' as stage_id, 3 as deals")
    portal = LocalPortal.for_home(home)
    try:
        done = subprocess.run([sys.executable, "-m", "b24_dagster.demo", "--home", str(home), "--no-run"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        out = done.stdout
        pid = portal.pid()
        assert pid and _alive(pid)
        assert f"The local Bitrix24 portal keeps running (emulator pid {pid}, port {portal.port()})" in out
        assert "exits by itself after 30 minutes without a request" in out

        hints = {
            "query": re.search(r"^  e\.g\. (.+)$", out, re.M).group(1),
            "dev": re.search(r"^  (DAGSTER_HOME=.+?)   \(or: .+\)$", out, re.M).group(1),
            "ui": re.search(r"^  DAGSTER_HOME=.+?   \(or: (.+)\)$", out, re.M).group(1),
            "stop": re.search(r"^  Stop it now: (.+)$", out, re.M).group(1),
        }
        for hint in hints.values():  # no bare `duckdb`, `python` or `dagster`: the venv's
            assert not hint.startswith(("duckdb ", "python ", "dagster ")), hint
        query = subprocess.run(hints["query"], shell=True, cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=60)  # fmt: skip
        assert query.returncode == 0, query.stderr
        assert "deals_by_stage_month" not in query.stderr and "NEW" in query.stdout

        dev = shlex.split(hints["dev"])
        assert dev[0] == f"DAGSTER_HOME={home}" and Path(dev[0].split("=", 1)[1]).is_absolute()
        assert os.access(REPO / dev[1], os.X_OK) and dev[2:] == ["dev", "-w", "workspace.yaml"]
        ui = shlex.split(hints["ui"])
        assert os.access(REPO / ui[0], os.X_OK) and ui[1:] == ["-m", "b24_dagster.demo", "--home", str(home), "--ui"]

        stop = subprocess.run(hints["stop"], shell=True, cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert stop.returncode == 0 and "local portal stopped" in stop.stdout, stop.stderr
        wait_for(lambda: not _alive(pid), "the stopped emulator to be gone", timeout=15)
    finally:
        portal.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ctrl_c_on_the_ui_ends_quietly_without_repeated_warnings(tmp_path: Path) -> None:
    """`python3 dev.py demo --ui`, then Ctrl-C: SIGINT to the whole foreground process group."""
    home, port = tmp_path / "home", _free_port()
    env = clean_env(home)
    command = ["python3", "dev.py", "demo", "--home", str(home), "--no-run", "--ui", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()

    def serving() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def daemon_started() -> bool:
        return any("Instance is configured with the following daemons" in line for line in lines)

    def exited() -> str | None:
        return f"the demo exited ({proc.returncode})" if proc.poll() is not None else None

    try:
        # Ctrl-C once both services are up, as a user would press it: on a busy machine the UI
        # may answer while the daemon is still importing, where an interrupt is another case.
        wait_for(lambda: serving() and daemon_started(), "the Dagster UI and daemon to be up",
                 timeout=300, interval=0.5, abort=exited)  # fmt: skip
        os.killpg(proc.pid, signal.SIGINT)
        # dagster dev gives the webserver and the daemon 60 s each to stop, then kills them:
        # the deadline lies past that, so a slow stop on a loaded machine still shows its output.
        wait_for(lambda: proc.poll() is not None, "dagster dev to end after Ctrl-C",
                 timeout=300, interval=0.2)  # fmt: skip
        status = proc.returncode
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        LocalPortal.for_home(home).stop()
    wait_for(lambda: not reader.is_alive(), "the end of the demo's output", timeout=60, interval=0.05)
    output = "".join(lines)
    assert status in (0, 130), output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt\n" not in output, output[-5000:]
    assert "does not match the name" not in output  # the code-location-name warning
    assert "superseded" not in output
    assert "Dagster services shut down" in output
    [shown] = [line for line in output.splitlines() if line.startswith("+ DAGSTER_HOME=")]
    ui = shlex.split(shown[2:])  # the UI command as printed, runnable again from the repository
    assert ui[0] == f"DAGSTER_HOME={home}" and os.access(REPO / ui[1], os.X_OK)
    assert ui[2:] == ["dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]


@pytest.mark.parametrize("preset", [None, "other"])
def test_dagster_commands_in_the_repo_find_the_demo_home(tmp_path: Path, preset: str | None) -> None:
    """The demo writes `DAGSTER_HOME=${DAGSTER_HOME:-<home>}` to the repository's `.env`, which
    the dagster and dg command lines read before they create their instance (here in a scratch
    directory standing for the repository)."""
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir()
    other.mkdir()
    dotenv = tmp_path / ".env"
    dotenv.write_text("B24_SOMETHING=1")
    assert point_dagster_cli_at_home(home, dotenv)
    assert not point_dagster_cli_at_home(other, dotenv)  # a .env that sets it stays as it is
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    if preset:
        env["DAGSTER_HOME"] = str(other)  # set by the user: it wins
    # The instance `dg launch` and `dagster asset materialize` record their runs in:
    code = ("from dagster._cli.utils import get_possibly_temporary_instance_for_cli as get\n"
            "with get('test') as instance: print(instance.root_directory)")  # fmt: skip
    done = subprocess.run([str(BIN / "python"), "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == str(other if preset else home)
    assert dotenv.read_text().startswith("B24_SOMETHING=1\n# Written by the demo")
