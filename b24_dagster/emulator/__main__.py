"""``python -m b24_dagster.emulator``: serve an emulated Bitrix24 portal until SIGINT/SIGTERM.

The first line of stdout is the webhook URL (``http://127.0.0.1:P/rest/1/<code>/``, or
``https://...`` with ``--tls``); everything else goes to stderr and
never shows the webhook code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._dispatch import Dispatcher
from ._faults import FaultInjector, FaultSettings, parse_fault_spec
from ._http import make_executor, serve
from ._portal import Portal
from ._requestlog import RequestLog
from ._settings import PortalSettings

_ENTITIES = ("deals", "leads", "contacts", "companies", "tasks")
_SINGULAR = {"deals": "deal", "leads": "lead", "contacts": "contact", "companies": "company",
             "tasks": "task"}



def _read_code(path: str) -> str:
    code = Path(path).read_text(encoding="utf-8").strip()
    if not code:
        raise SystemExit(f"--code-file {path}: the file is empty")
    return code

def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m b24_dagster.emulator",
                                description="Serve an emulated Bitrix24 portal.")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--port-file", help="write the bound port to this file")
    p.add_argument("--code", help="webhook code (random when not given)")
    p.add_argument("--code-file", metavar="FILE",
                   help="read the webhook code from FILE (keeps it out of the process list)")
    p.add_argument("--user-id", type=int, default=1, help="the webhook's user id")
    p.add_argument("--rate", type=float, default=2.0, help="leaky bucket drain/s (0 = no limit)")
    p.add_argument("--burst", type=int, default=50, help="leaky bucket size")
    p.add_argument("--operating-limit", type=float, default=480.0,
                   help="seconds of execution per method per window before 429")
    p.add_argument("--operating-window", type=int, default=600, help="window in seconds")
    p.add_argument("--command-cost", type=float, default=None,
                   help="simulated seconds charged per read command")
    p.add_argument("--write-cost", type=float, default=None,
                   help="simulated seconds charged per write command")
    p.add_argument("--import-cost", type=float, default=None,
                   help="simulated seconds charged per record of crm.item.import/batchImport")
    p.add_argument("--no-import-permission", action="store_true",
                   help="the webhook's user lacks the CRM import permission (imports: 400 ACCESS_DENIED)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--scopes", help="comma-separated webhook scopes (default: all)")
    p.add_argument("--state", help="keep the portal in this SQLite file")
    p.add_argument("--tls", action="store_true", help="serve https with a generated local CA")
    p.add_argument("--ca-file", help="with --tls: where to write the CA bundle")
    for name in _ENTITIES:
        p.add_argument(f"--seed-{name}", type=int, default=0, metavar="N",
                       help=f"make sure at least N {name} exist (deterministic)")
    p.add_argument("--fault", action="append", default=[], metavar="KIND[:k=v,...]",
                   help="inject a fault, e.g. storm_503:every=100,length=5 (repeatable)")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault RNG")
    p.add_argument("--no-uvloop", action="store_true",
                   help="use the standard asyncio loop even when uvloop is installed")
    p.add_argument("--log-level", default="WARNING",
                   help="stderr log level (DEBUG logs every request, code redacted)")
    p.add_argument("--idle-exit", type=float, default=0.0, metavar="SECONDS",
                   help="exit after this many seconds without a request (0 = never)")
    p.add_argument("--exit-when-missing", metavar="PATH",
                   help="exit once PATH no longer exists (e.g. the directory of --state)")
    return p


def settings_from_args(args: argparse.Namespace) -> PortalSettings:
    """PortalSettings from the parsed command line."""
    extra: dict[str, object] = {}
    if args.command_cost is not None:
        extra["command_cost"] = args.command_cost
    if args.write_cost is not None:
        extra["write_cost"] = args.write_cost
    if args.import_cost is not None:
        extra["import_cost"] = args.import_cost
    if args.no_import_permission:
        extra["import_permission"] = False
    if args.scopes:
        extra["scopes"] = frozenset(s.strip() for s in args.scopes.split(",") if s.strip())
    return PortalSettings(
        code=_read_code(args.code_file) if args.code_file else args.code, user_id=args.user_id, rate=args.rate, burst=args.burst,
        operating_limit=args.operating_limit, operating_window=args.operating_window,
        latency=args.latency, state_path=args.state, **extra)  # type: ignore[arg-type]


def faults_from_args(args: argparse.Namespace) -> FaultSettings:
    """FaultSettings from the ``--fault`` options."""
    faults = FaultSettings(seed=args.fault_seed)
    for spec in args.fault:
        kind, rule = parse_fault_spec(spec)
        setattr(faults, kind, rule)
    return faults


async def _serve(args: argparse.Namespace, portal: Portal, faults: FaultSettings) -> None:
    ssl_context = None
    if args.tls:
        from ._tls import make_tls
        files = make_tls(args.ca_file)
        ssl_context = files.server_context()
    dispatcher = Dispatcher(portal, FaultInjector(faults), RequestLog(maxlen=10_000))
    executor = make_executor()
    server = await serve(dispatcher, args.host, args.port, executor=executor,
                         ssl_context=ssl_context)
    port = server.sockets[0].getsockname()[1]
    host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    scheme = "https" if args.tls else "http"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The port file and the handlers are ready before the URL appears: whoever waits for the
    # first line may then read the file, or stop us, at once.
    if args.port_file:
        Path(args.port_file).write_text(f"{port}\n")
    print(f"{scheme}://{host}:{port}{portal.webhook_path(2)}", flush=True)
    if args.tls:
        print(f"CA bundle: {files.ca_file}  (REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS)",
              file=sys.stderr, flush=True)
    watch = asyncio.ensure_future(_watch(args, dispatcher.log, stop))
    try:
        await stop.wait()
    finally:
        watch.cancel()
        server.close()
        executor.shutdown(wait=False, cancel_futures=True)


async def _watch(args: argparse.Namespace, log: RequestLog, stop: asyncio.Event) -> None:
    """Set ``stop`` after ``--idle-exit`` seconds without a request, or once
    ``--exit-when-missing`` is gone (a detached emulator must not outlive its reason to run)."""
    if not args.idle_exit and not args.exit_when_missing:
        return
    started = time.time()
    interval = min(1.0, args.idle_exit / 4) if args.idle_exit else 1.0
    while not stop.is_set():
        await asyncio.sleep(interval)
        if args.exit_when_missing and not Path(args.exit_when_missing).exists():
            print(f"{args.exit_when_missing} is gone: exiting", file=sys.stderr, flush=True)
            stop.set()
        elif args.idle_exit:
            records = log.records()
            idle = time.time() - (records[-1].time if records else started)
            if idle >= args.idle_exit:
                print(f"no request for {idle:.0f} s: exiting", file=sys.stderr, flush=True)
                stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        faults = faults_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    portal = Portal(settings_from_args(args))
    try:
        counts = portal.counts()
        for name in _ENTITIES:
            want = getattr(args, f"seed_{name}")
            have = counts.get(_SINGULAR[name], 0)
            if want > have:
                portal.seed(_SINGULAR[name], want - have)
        run = asyncio.run
        if not args.no_uvloop:
            try:
                import uvloop  # optional: faster sockets when installed, never required
                run = uvloop.run
            except ImportError:
                pass
        try:
            run(_serve(args, portal, faults))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
                  file=sys.stderr)
            return 1
    finally:
        portal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
