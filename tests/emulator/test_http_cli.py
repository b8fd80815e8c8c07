"""``python -m b24_dagster.emulator``: first line, signals, state, port file, TLS, log redaction."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from b24_dagster.emulator import PortalEmulator, start_subprocess


def test_cli_prints_url_first_and_stops_on_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    emu = start_subprocess(["--code", "fixedcode123", "--rate", "0", "--seed-deals", "7",
                            "--port-file", str(port_file)])
    try:
        assert emu.webhook_url == f"http://127.0.0.1:{emu.port}/rest/1/fixedcode123/"
        assert int(port_file.read_text()) == emu.port
        r = requests.post(emu.webhook_url + "crm.deal.list", json={})
        assert r.json()["total"] == 7
    finally:
        assert emu.stop() == 0


def test_cli_sigint_exits_cleanly() -> None:
    emu = start_subprocess(["--rate", "0"])
    emu.process.send_signal(signal.SIGINT)
    assert emu.process.wait(10) == 0
    emu.stop()


def test_state_persists_across_restarts(tmp_path: Path) -> None:
    state = str(tmp_path / "portal.sqlite")
    args = ["--code", "c0de", "--state", state, "--seed-deals", "5", "--rate", "0"]
    with start_subprocess(args) as emu:
        r = requests.post(emu.webhook_url + "crm.deal.add", json={"fields": {"TITLE": "kept"}})
        new_id = r.json()["result"]
    with start_subprocess(args) as emu:   # --seed-deals 5 is already satisfied: no new seed
        r = requests.post(emu.webhook_url + "crm.deal.list", json={})
        assert r.json()["total"] == 6
        got = requests.post(emu.webhook_url + "crm.deal.get", json={"id": new_id}).json()
        assert got["result"]["TITLE"] == "kept"


def test_cli_log_never_shows_the_code() -> None:
    code = "secretcode42xyz"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "b24_dagster.emulator", "--port", "0",
                             "--code", code, "--log-level", "DEBUG",
                             "--fault", "error_500:requests=2-2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        requests.get(url + "server.time")
        requests.get(url + "server.time")
        base = url.split("/rest/")[0]
        requests.get(base + "/rest/server.time", params={"auth": code})
    finally:
        proc.terminate()
        out, err = proc.communicate(10)
    assert proc.returncode == 0
    assert "/rest/1/***/server.time" in err and "fault error_500" in err
    assert code not in err and code not in out


@pytest.mark.parametrize("in_process", [True, False])
def test_tls_with_generated_ca_verifies(tmp_path: Path, in_process: bool) -> None:
    ca = tmp_path / "ca.pem"
    if in_process:
        emu = PortalEmulator(tls=True, ca_file=ca).start()
        url, stop = emu.webhook_url, emu.stop
    else:
        child = start_subprocess(["--tls", "--ca-file", str(ca)])
        url, stop = child.webhook_url, child.stop
    try:
        assert url.startswith("https://127.0.0.1:")
        r = requests.get(url + "server.time", verify=str(ca))
        assert r.status_code == 200
        r = requests.get(url.replace("127.0.0.1", "localhost") + "server.time", verify=str(ca))
        assert r.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url + "server.time", verify=True)
        ctx = ssl.create_default_context(cafile=str(ca))
        assert ctx.cert_store_stats()["x509_ca"] == 1
    finally:
        stop()


def test_code_file_keeps_the_code_out_of_the_process_list(tmp_path) -> None:
    code_file = tmp_path / "code"
    code_file.write_text("f1lec0de\n")
    emulator = start_subprocess(["--code-file", str(code_file), "--rate", "0"])
    try:
        assert "/rest/1/f1lec0de/" in emulator.webhook_url
        cmdline = Path(f"/proc/{emulator.process.pid}/cmdline").read_bytes()
        assert b"f1lec0de" not in cmdline
    finally:
        emulator.stop()


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the IPv4/IPv6 sockets listening on ``port`` (from the kernel)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's socket table")
@pytest.mark.parametrize(("host", "expected"), [(None, {"0100007F"}), ("0.0.0.0", {"00000000"})])
def test_emulator_binds_to_loopback_unless_told_otherwise(host: str | None, expected: set[str]) -> None:
    args = ["--rate", "0"] + (["--host", host] if host else [])
    with start_subprocess(args) as emu:
        assert _listening_addresses(emu.port) == expected


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's socket table")
def test_in_process_emulator_binds_to_loopback() -> None:
    with PortalEmulator() as emu:
        assert _listening_addresses(emu.port) == {"0100007F"}
