"""A small threaded HTTP proxy for the transport's tests: ``CONNECT`` tunnels and forwarding.

It does what a corporate proxy in front of a portal does, and records it:

* ``CONNECT host:port`` (an https portal): answers 200 and relays bytes both ways until either
  side closes; :attr:`HttpProxy.tunnels` lists each tunnel's target;
* ``POST http://host:port/path`` (an http portal, absolute form): sends the request on to the
  target over a connection of its own, relays the answer; :attr:`HttpProxy.forwarded` counts;
* ``POST /path`` with ``upstream`` set: the same, as a reverse proxy in front of a portal
  (nginx on the portal's host);
* with ``max_body``, a request whose ``Content-Length`` is larger is refused the way nginx's
  ``client_max_body_size`` refuses it: a 413 page at once, before the body is read, then the
  connection is closed with most of the body unread (:attr:`HttpProxy.refused`);
* with ``auth``, a request without ``Proxy-Authorization: Basic <auth>`` gets a 407.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import threading
from typing import BinaryIO

__all__ = ["HttpProxy"]

_HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive",
               "transfer-encoding", "te", "trailer", "upgrade"}
_REFUSED_PAGE = (b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n"
                 b"<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n"
                 b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class HttpProxy:
    """A proxy on ``127.0.0.1`` (a free port), served by daemon threads until :meth:`close`.

    Args:
        max_body: Refuse larger request bodies with an early 413 (None: no limit).
        auth: ``user:password`` the proxy demands (None: none).
        upstream: ``host:port`` that requests in origin form go to (a reverse proxy).
    """

    def __init__(self, *, max_body: int | None = None, auth: str | None = None,
                 upstream: str | None = None) -> None:
        self.max_body = max_body
        self.upstream = upstream
        self.auth = base64.b64encode(auth.encode()).decode() if auth else None
        self.tunnels: list[str] = []
        self.forwarded = 0
        self.refused = 0
        self.denied = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="test-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop accepting and close every connection still open."""
        with contextlib.suppress(OSError):  # wakes the accepting thread (close alone does not)
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self._lock:
            for conn in list(self._open):
                with contextlib.suppress(OSError):
                    conn.close()

    def __enter__(self) -> HttpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- serving ------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        upstream: http.client.HTTPConnection | None = None
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    return
                line, headers = head
                verb, target, _ = line.split(" ", 2)
                if self.auth and headers.get("proxy-authorization") != f"Basic {self.auth}":
                    self.denied += 1
                    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
                                 b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                if verb == "CONNECT":
                    self._tunnel(conn, target)
                    return
                length = int(headers.get("content-length", "0"))
                if self.max_body is not None and length > self.max_body:
                    self.refused += 1
                    conn.sendall(b"HTTP/1.1 413 Request Entity Too Large\r\nServer: nginx\r\n"
                                 b"Content-Type: text/html\r\nConnection: close\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(_REFUSED_PAGE) + _REFUSED_PAGE)
                    reader.read(min(length, 16 * 1024))  # closed with the rest unread
                    return
                upstream = self._forward(conn, reader, verb, target, headers, length, upstream)
        except (OSError, ValueError, http.client.HTTPException):
            return
        finally:
            if upstream is not None:
                upstream.close()
            reader.close()
            with self._lock:
                self._open.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _forward(self, conn: socket.socket, reader: BinaryIO, verb: str, target: str,
                 headers: dict[str, str], length: int,
                 upstream: http.client.HTTPConnection | None) -> http.client.HTTPConnection:
        if target.startswith("/") and self.upstream:
            hostport, path = self.upstream, target[1:]
        else:
            hostport, _, path = target.split("://", 1)[1].partition("/")
        host, _, port = hostport.rpartition(":")
        body = reader.read(length) if length else b""
        if upstream is None:
            upstream = http.client.HTTPConnection(host, int(port), timeout=30)
        sent = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
        upstream.request(verb, "/" + path, body=body, headers=sent)
        answer = upstream.getresponse()
        data = answer.read()  # raw bytes: a gzip body stays gzip
        self.forwarded += 1
        out = [f"HTTP/1.1 {answer.status} {answer.reason}"]
        out += [f"{k}: {v}" for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP
                and k.lower() != "content-length"]
        out.append(f"Content-Length: {len(data)}\r\n\r\n")
        conn.sendall("\r\n".join(out).encode("latin-1") + data)
        return upstream

    def _tunnel(self, conn: socket.socket, target: str) -> None:
        host, _, port = target.rpartition(":")
        with socket.create_connection((host.strip("[]"), int(port)), timeout=30) as far:
            self.tunnels.append(target)
            # a client waits for this line before its TLS handshake: nothing is buffered yet
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            back = threading.Thread(target=_pipe, args=(far, conn), daemon=True)
            back.start()
            _pipe(conn, far)
            back.join(30)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _read_head(reader: BinaryIO) -> tuple[str, dict[str, str]] | None:
    line = reader.readline(65536)
    if not line:
        return None
    headers: dict[str, str] = {}
    while (header := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return line.decode("latin-1").rstrip("\r\n"), headers
