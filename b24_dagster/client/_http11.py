"""HTTP/1.1 POSTs on kept-alive sockets: the transport's own path to the portal.

Why not urllib3 here: a batch answer is one JSON body, and urllib3 with ``http.client`` spend
more CPU on the exchange (header objects, an ``email`` parser per answer, a buffered file per
answer, the pool's checks) than the client spends on everything else of the batch. This
module writes the request in one ``sendall`` and reads the answer from the socket directly,
with the same guarantees the transport documents:

* a connection that could not be made (or whose TLS handshake failed) raises
  :class:`~b24_dagster.errors.ConnectError`: nothing was sent;
* from the first byte sent until the whole answer is read, a failure raises
  :class:`MaybeSent`: the portal may have run the request;
* an idle connection is checked before it is reused (a server that closed it has made it
  readable) and is never reused after an answer that was not read to its end;
* bodies are bounded by ``max_bytes`` before and after inflating (gzip, deflate) and may come
  with a length, chunked, or up to the closing of the connection.

Messages never name the path (it holds the webhook code).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from b24_dagster.errors import ConnectError, ProtocolError, TransportError

__all__ = ["MaybeSent", "RawAnswer", "WirePool", "too_large"]

_MAX_HEAD = 64 * 1024
_RECV = 256 * 1024


class MaybeSent(TransportError):
    """The request may have reached the portal, but no complete answer came back."""


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """An HTTP answer whose body was read in full (not yet decoded)."""

    status: int
    content: bytes
    headers: dict[str, str]


def too_large(method: str, status: int, limit: int) -> ProtocolError:
    """The error for an answer larger than ``max_response_bytes``."""
    error = ProtocolError(f"{method}: the answer is larger than max_response_bytes={limit}",
                          method=method, status=status)
    error.oversized = True  # type: ignore[attr-defined]
    return error


class _Closed(Exception):
    """The peer closed the connection (end of stream)."""


class _Connection:
    """One socket (TLS or plain) and the bytes read from it but not yet used."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def is_dropped(self) -> bool:
        """True when the idle socket is readable: the server closed it (or sent stray bytes)."""
        if self.buf:
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def _recv(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            raise _Closed
        self.buf += data

    def read_until(self, marker: bytes, most: int) -> bytes:
        """The bytes up to ``marker`` (consumed with it); at most ``most`` bytes looked at."""
        buf = self.buf
        start = 0
        while True:
            at = buf.find(marker, start)
            if at >= 0:
                out = bytes(buf[:at])
                del buf[:at + len(marker)]
                return out
            if len(buf) > most:
                raise MaybeSent("the answer's header is too long")
            start = max(0, len(buf) - len(marker) + 1)
            self._recv()

    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes."""
        buf = self.buf
        if len(buf) >= n:
            out = bytes(buf[:n])
            del buf[:n]
            return out
        parts = [bytes(buf)]
        got = len(buf)
        buf.clear()
        sock = self.sock
        while got < n:
            data = sock.recv(min(n - got, _RECV))
            if not data:
                raise _Closed
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def read_some(self) -> bytes:
        """What is buffered, or the next bytes from the socket (b"" at the end of stream)."""
        if self.buf:
            out = bytes(self.buf)
            self.buf.clear()
            return out
        return self.sock.recv(_RECV)


class _Inflater:
    """The body as it arrives, inflated when it is encoded, and bounded either way."""

    def __init__(self, encoding: str, limit: int, method: str, status: int) -> None:
        self.limit, self.method, self.status = limit, method, status
        self.parts: list[bytes] = []
        self.size = 0
        self.raw_size = 0
        self.zlib = None
        if encoding in ("gzip", "x-gzip"):
            self.zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.zlib = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise MaybeSent(f"{method}: the answer has an unknown content encoding")

    def feed(self, data: bytes) -> None:
        self.raw_size += len(data)
        if self.raw_size > self.limit:
            raise too_large(self.method, self.status, self.limit)
        if self.zlib is not None:
            try:
                data = self.zlib.decompress(data, self.limit + 1 - self.size)
            except zlib.error:
                raise MaybeSent(f"{self.method}: the answer's compressed body is broken") from None
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.method, self.status, self.limit)
        self.parts.append(data)

    def content(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class WirePool:
    """Kept-alive connections to one origin (taken by one request at a time; thread-safe).

    Args:
        host: The host name or address.
        port: The TCP port.
        tls: The TLS context, or None for plain http (loopback only, checked by the caller).
        connect_timeout: Seconds to connect (and to finish the TLS handshake).
        read_timeout: Seconds without a byte of the answer before giving up.
        maxsize: Idle connections kept.
    """

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, *,
                 connect_timeout: float, read_timeout: float, maxsize: int = 10) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.maxsize = maxsize
        default = 443 if tls is not None else 80
        name = f"[{host}]" if ":" in host else host
        self.host_header = name if port == default else f"{name}:{port}"
        self._idle: list[_Connection] = []

    def clear(self) -> None:
        """Close every idle connection."""
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                return

    def post(self, path: str, body: bytes, headers: Mapping[str, str], *, method: str,
             max_bytes: int) -> RawAnswer:
        """POST ``body`` to ``path`` and read the whole answer.

        Raises:
            ConnectError: No connection could be made: nothing was sent.
            MaybeSent: It may have been sent, and no complete answer came back.
            ProtocolError: The answer is larger than ``max_bytes``.
        """
        head = _request_head(path, self.host_header, headers, len(body))
        conn = self._take(method)
        keep = False
        try:
            try:
                conn.sock.sendall(head + body)
                answer, keep = _read_answer(conn, method, max_bytes)
            except TransportError:  # MaybeSent or ProtocolError, raised above with their reason
                raise
            except TimeoutError:
                raise MaybeSent(f"{method}: no answer within {self.read_timeout} s",
                                method=method) from None
            except (_Closed, OSError, ValueError) as exc:
                why = "closed by the server" if isinstance(exc, _Closed) else type(exc).__name__
                raise MaybeSent(f"{method}: connection lost after sending ({why})",
                                method=method) from None
        finally:
            if keep and len(self._idle) < self.maxsize:
                self._idle.append(conn)
            else:
                conn.close()
        return answer

    def _take(self, method: str) -> _Connection:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return self._connect(method)
            if not conn.is_dropped():
                return conn
            conn.close()

    def _connect(self, method: str) -> _Connection:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise ConnectError(f"{method}: could not connect to {self.host_header} "
                               f"({type(exc).__name__}: {exc.strerror or exc})", method=method) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLError as exc:
            sock.close()
            raise ConnectError(f"{method}: TLS failure with {self.host_header} ({type(exc).__name__}: {exc})",
                               method=method, retryable=False) from None
        except OSError as exc:
            sock.close()
            raise ConnectError(f"{method}: could not connect to {self.host_header} "
                               f"({type(exc).__name__}: {exc.strerror or exc})", method=method) from None
        sock.settimeout(self.read_timeout)
        return _Connection(sock)


def _request_head(path: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"the header {name} holds a line break")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}\r\n\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _read_answer(conn: _Connection, method: str, max_bytes: int) -> tuple[RawAnswer, bool]:
    """The answer, and whether the connection may carry another request."""
    while True:
        status, version, headers = _parse_head(conn.read_until(b"\r\n\r\n", _MAX_HEAD), method)
        if not 100 <= status < 200:
            break  # a 1xx is followed by the real answer
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    body = _Inflater(headers.get("content-encoding", "").strip().lower(), max_bytes, method, status)
    if status in (204, 304):
        return RawAnswer(status, b"", headers), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        _read_chunked(conn, body)
    elif "content-length" in headers:
        length = _length(headers["content-length"], method)
        if length > max_bytes:
            raise too_large(method, status, max_bytes)
        body.feed(conn.read_exact(length))
    else:  # the body ends where the connection does
        keep = False
        while data := conn.read_some():
            body.feed(data)
    return RawAnswer(status, body.content(), headers), keep


def _parse_head(head: bytes, method: str) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise MaybeSent(f"{method}: the answer does not start with an HTTP status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(parts[1]), parts[0], headers


def _length(text: str, method: str) -> int:
    text = text.split(",")[0].strip()
    if not text.isdigit():
        raise MaybeSent(f"{method}: the answer has a malformed Content-Length")
    return int(text)


def _read_chunked(conn: _Connection, body: _Inflater) -> None:
    while True:
        line = conn.read_until(b"\r\n", 1024).split(b";", 1)[0].strip()
        try:
            size = int(line, 16)
        except ValueError:
            raise MaybeSent(f"{body.method}: the answer's chunked body is malformed") from None
        if size == 0:
            while conn.read_until(b"\r\n", _MAX_HEAD):  # trailers, up to the empty line
                pass
            return
        if body.raw_size + size > body.limit:
            raise too_large(body.method, body.status, body.limit)
        body.feed(conn.read_exact(size))
        conn.read_exact(2)
