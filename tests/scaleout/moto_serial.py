"""moto's S3 server with S3's atomic conditional writes: one request handled at a time.

S3 applies a conditional `PutObject` (`If-None-Match: *`, `If-Match: <etag>`) atomically: of
two writers racing on one version, exactly one wins. moto's server runs each request in a
thread and checks the condition, then writes, as two steps of Python code with nothing
between them to keep another thread out (`moto/s3/responses.py`, `put_object`). We have
not seen two winners there (0 of 400 trials of 8 threads racing on one key, 2026-12-07),
but nothing promises it; the lease tests are about our protocol, so this server wraps
moto's WSGI application in one lock, giving S3's promise. Connections are still served by
threads (keep-alive works), and everything else is moto's own.

    python -m tests.scaleout.moto_serial -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class Serialized:
    """A WSGI application that lets one request at a time into `app` (its answer is built
    inside the call: moto returns it whole)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.lock:
            return list(self.app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--threaded-moto", action="store_true", help="moto as it comes (no lock)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server does: its own URLs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app if args.threaded_moto else Serialized(app), threaded=True,
               request_handler=MotoRequestHandler)  # fmt: skip


if __name__ == "__main__":
    main()
