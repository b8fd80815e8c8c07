"""`definitions.py` through Dagster's and dg's own command lines, and the local portal."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from b24_dagster.demo._local_portal import LocalPortal
from tests.demo.helpers import BIN, REPO, clean_env

VALIDATE = [str(BIN / "dagster"), "definitions", "validate", "-f", "definitions.py"]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def test_validate_with_a_configured_webhook(b24_emulator: Any, tmp_path: Path) -> None:
    env = clean_env(tmp_path, BITRIX24_WEBHOOK_URL=b24_emulator.webhook_url)
    done = _run(VALIDATE, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout
    assert not (tmp_path / "b24_portal").exists()  # a configured webhook starts no emulator


def test_dg_check_defs(b24_emulator: Any, tmp_path: Path) -> None:
    env = clean_env(tmp_path, BITRIX24_WEBHOOK_URL=b24_emulator.webhook_url)
    done = _run([str(BIN / "dg"), "check", "defs"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_local_portal_is_started_once_and_reused(tmp_path: Path) -> None:
    """Two processes loading the definitions at once share one emulator, which outlives them."""
    env = clean_env(tmp_path)
    portal = LocalPortal.for_home(tmp_path)
    # Create the instance's SQLite storage first: two Dagster processes creating it at once
    # race on its tables, which is Dagster's affair, not the portal's.
    dg.DagsterInstance.from_config(str(tmp_path)).dispose()
    try:
        procs = [
            subprocess.Popen(
                VALIDATE,
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-3000:]

        pid, port = portal.pid(), portal.port()
        assert pid is not None and port is not None
        os.kill(pid, 0)  # the emulator outlived both processes
        assert portal.running_url() is not None
        assert stat.S_IMODE(portal.code_file.stat().st_mode) == 0o600
        code = portal.code_file.read_text()
        for out, err in outputs:
            assert code not in out and code not in err
        assert code not in portal.log_file.read_text()

        # A later load reuses it: same process, same port.
        url = portal.ensure()
        assert (portal.pid(), portal.port()) == (pid, port)
        assert url == portal.running_url()
    finally:
        stopped = portal.stop()
    assert stopped
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
