"""``PortalEmulator``: the portal on a real socket, served from a daemon thread.

Example::

    with PortalEmulator(PortalSettings(rate=0)) as emu:
        emu.portal.seed("deal", 100)
        requests.post(emu.webhook_url + "crm.deal.list", json={}).json()

``start_subprocess`` runs the same server as ``python -m b24_dagster.emulator`` in another
process (benchmarks want the client and the server on different cores).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._dispatch import Dispatcher
from ._faults import FaultInjector, FaultSettings
from ._http import make_executor, serve
from ._portal import Portal
from ._requestlog import RequestLog, RequestRecord
from ._settings import PortalSettings

__all__ = ["EmulatorProcess", "PortalEmulator", "start_subprocess"]


class PortalEmulator:
    """An emulated Bitrix24 portal listening on ``host:port`` (0 = a free port).

    Args:
        settings: the portal's settings (a default portal when None).
        port: the TCP port; 0 picks a free one (read it back from :attr:`port`).
        host: the address to bind; loopback by default.
        tls: serve https with a generated local CA (see :attr:`ca_file`).
        faults: faults to inject from the start.
        ca_file: where to write the CA bundle when ``tls`` (a temporary file by default).
    """

    def __init__(self, settings: PortalSettings | None = None, *, port: int = 0,
                 host: str = "127.0.0.1", tls: bool = False, faults: FaultSettings | None = None,
                 ca_file: str | os.PathLike[str] | None = None) -> None:
        self.portal = Portal(settings)
        self._initial = dataclasses.replace(self.portal.settings)
        self.host = host
        self.tls = tls
        self._requested_port = port
        self._ca_file_arg = ca_file
        self.ca_file: str | None = None
        self.faults = FaultInjector(faults or FaultSettings())
        self.log = RequestLog()
        self.dispatcher = Dispatcher(self.portal, self.faults, self.log)
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> PortalEmulator:
        """Start serving in a daemon thread; returns once the socket listens."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        ssl_context = None
        if self.tls:
            from ._tls import make_tls
            files = make_tls(self._ca_file_arg)
            self.ca_file = str(files.ca_file)
            ssl_context = files.server_context()
        loop = asyncio.new_event_loop()
        executor = self._executor = make_executor()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            try:
                self._server = await serve(self.dispatcher, self.host, self._requested_port,
                                           executor=executor, ssl_context=ssl_context)
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
            finally:
                ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.create_task(boot())
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="b24-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self.stop()
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving, close connections and the portal's SQLite file."""
        loop, thread, server = self._loop, self._thread, self._server
        if loop is None or thread is None:
            return

        async def halt() -> None:
            if server is not None:
                server.close()
                with contextlib.suppress(AttributeError):
                    server.close_clients()  # Python 3.13+
            loop.stop()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(halt(), loop)
        thread.join(10)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._loop = self._thread = self._server = self._executor = None
        self.portal.close()

    def __enter__(self) -> PortalEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS; the certificate also names
        ``localhost``)."""
        host = "127.0.0.1" if self.host in ("127.0.0.1", "0.0.0.0", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        """The v2 webhook URL, ``{base_url}/rest/1/<code>/``."""
        return self.base_url + self.portal.webhook_path(2)

    @property
    def webhook_url_v3(self) -> str:
        """The v3 webhook URL, ``{base_url}/rest/api/1/<code>/``."""
        return self.base_url + self.portal.webhook_path(3)

    # ---- introspection and control ------------------------------------------------------
    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request so far (webhook code redacted), oldest first."""
        return self.log.records()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: the portal's (``requests``, ``refused_503``, ``blocked_429``...) and
        ``faults`` (injected, by kind)."""
        out: dict[str, Any] = dict(self.portal.stats)
        out["refusals"] = out.get("refused_503", 0)
        out["http_requests"] = len(self.log)
        out["faults"] = dict(self.faults.counts)
        return out

    def counts(self) -> dict[str, int]:
        """Records per entity."""
        return self.portal.counts()

    def reset(self, *, settings: bool = True) -> None:
        """Empty the portal (store, limits, stats), the request log and the faults.

        With ``settings`` (the default), settings changed by :meth:`configure` return to
        the ones the emulator was created with (the webhook code never changes).
        """
        if settings:
            initial = self._initial
            self.portal.configure(**{
                f.name: getattr(initial, f.name) for f in dataclasses.fields(initial)
                if f.name not in ("state_path", "utc_offset")})
        self.portal.reset()
        self.log.clear()
        self.faults.configure(None)

    def configure(self, **settings: Any) -> None:
        """Change portal settings at run time (``rate=0``, ``burst=...``, ``latency=...``)."""
        self.portal.configure(**settings)

    def set_faults(self, faults: FaultSettings | None) -> None:
        """Replace the fault rules (None = none); the fault counters restart."""
        self.faults.configure(faults)


@dataclass
class EmulatorProcess:
    """An emulator running as ``python -m b24_dagster.emulator`` in a child process."""

    process: subprocess.Popen[str]
    webhook_url: str

    @property
    def port(self) -> int:
        """The port from the printed webhook URL."""
        return int(self.webhook_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    @property
    def base_url(self) -> str:
        """The scheme, host and port of the printed webhook URL."""
        return self.webhook_url.split("/rest/", 1)[0]

    def stop(self, timeout: float = 10.0) -> int:
        """Send SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_subprocess(args: Sequence[str] = (), *, python: str | None = None,
                     env: dict[str, str] | None = None, timeout: float = 60.0,
                     cwd: str | os.PathLike[str] | None = None) -> EmulatorProcess:
    """Run the emulator CLI in a child process and wait for its webhook URL.

    ``args`` are CLI flags (``["--rate", "0", "--seed-deals", "1000"]``); ``--port 0`` is
    added when no port is given. stderr goes to this process's stderr.

    Raises:
        RuntimeError: the child exited or printed no URL within ``timeout`` seconds.
    """
    argv = [python or sys.executable, "-m", "b24_dagster.emulator", *args]
    if "--port" not in args:
        argv += ["--port", "0"]
    child_env = dict(os.environ if env is None else env)
    root = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=child_env, cwd=cwd)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    reader.join(timeout)
    url = line[0].strip() if line else ""
    if not url.startswith("http"):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the emulator printed no webhook URL (exit code {proc.returncode})")
    return EmulatorProcess(proc, url)
