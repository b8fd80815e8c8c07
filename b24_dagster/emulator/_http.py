"""A small HTTP/1.1 server on a raw :class:`asyncio.Protocol`.

It does what clients of a portal need and no more: keep-alive, pipelined requests answered
in order, ``Content-Length`` and chunked request bodies, ``Expect: 100-continue``. Every
answer leaves in one ``transport.write`` (status line, headers and body together): split
writes meet Nagle's algorithm and delayed ACKs and cost 40 ms a request.

The portal's ``handle`` is synchronous and fast, so it runs on the event loop. Waiting (a
``slow`` fault) is an ``asyncio.sleep``; a portal ``latency`` setting, which the portal
sleeps through itself, runs the request on a worker thread instead, so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import ssl
import time

from ._dispatch import Answer, Dispatcher, Prepared, RawRequest, build_response

__all__ = ["HttpProtocol", "make_executor", "serve"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _BadRequest(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, dispatcher: Dispatcher, executor: concurrent.futures.Executor) -> None:
        self.dispatcher = dispatcher
        self.executor = executor
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.client_ip = "127.0.0.1"
        self._head: tuple[str, str, dict[str, str], bool, int, bool] | None = None
        self._continued = False

    # ---- asyncio callbacks ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0])

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self.closed = True
        self.transport = None

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self.buf += data
        if not self.busy:
            self._process()

    # ---- request handling --------------------------------------------------------------
    def _process(self) -> None:
        while not self.closed:
            try:
                raw = self._parse()
            except _BadRequest as err:
                body = json.dumps({"error": "INVALID_REQUEST", "error_description": str(err)}).encode()
                self._send(Answer(build_response(err.status, body, close=True), True))
                return
            if raw is None:
                return
            prepared = self.dispatcher.prepare(raw, self.client_ip)
            if prepared.delay > 0 or (prepared.portal_request is not None
                                      and self.dispatcher.portal.settings.latency > 0):
                self.busy = True
                asyncio.get_running_loop().create_task(self._respond_later(prepared))
                return
            if not self._send(self.dispatcher.respond(prepared)):
                return

    async def _respond_later(self, prepared: Prepared) -> None:
        try:
            if prepared.delay > 0:
                await asyncio.sleep(prepared.delay)
            if prepared.portal_request is not None and self.dispatcher.portal.settings.latency > 0:
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(self.executor, self.dispatcher.respond, prepared)
            else:
                answer = self.dispatcher.respond(prepared)
        except Exception:  # noqa: BLE001 - never leave a connection hanging
            answer = Answer(None, True)
        self.busy = False
        if self._send(answer):
            self._process()

    def _send(self, answer: Answer) -> bool:
        transport = self.transport
        if transport is None:
            return False
        if answer.data is not None:
            transport.write(answer.data)
        if answer.close:
            self.closed = True
            transport.close()
            return False
        return True

    def _parse(self) -> RawRequest | None:
        buf = self.buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise _BadRequest(431, "Request headers too large")
                return None
            self._head = self._parse_head(bytes(buf[:end]), end + 4)
            self._continued = False
        method, target, headers, keep_alive, head_len, chunked = self._head
        if chunked:
            body_end, body = _dechunk(buf, head_len)
            if body is None:
                self._maybe_continue(headers)
                return None
        else:
            length = int(headers.get("content-length", "0") or "0")
            body_end = head_len + length
            if len(buf) < body_end:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[head_len:body_end])
        del buf[:body_end]
        self._head = None
        return RawRequest(method, target, headers, body, keep_alive, time.time())

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._continued and headers.get("expect", "").lower() == "100-continue":
            self._continued = True
            if self.transport is not None:
                self.transport.write(_CONTINUE)

    @staticmethod
    def _parse_head(head: bytes, head_len: int) -> tuple[str, str, dict[str, str], bool, int, bool]:
        lines = head.decode("latin-1").split("\r\n")
        while lines and not lines[0]:
            lines.pop(0)   # tolerate stray CRLF between pipelined requests
        try:
            method, target, version = lines[0].split(" ", 2)
        except (ValueError, IndexError):
            raise _BadRequest(400, "Malformed request line") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(400, "Malformed header line")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        conn = headers.get("connection", "").lower()
        keep_alive = ("close" not in conn) if version == "HTTP/1.1" else ("keep-alive" in conn)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked:
            try:
                length = int(headers.get("content-length", "0") or "0")
            except ValueError:
                raise _BadRequest(400, "Bad Content-Length") from None
            if length < 0 or length > _MAX_BODY:
                raise _BadRequest(413, "Request body too large")
        return method.upper(), target, headers, keep_alive, head_len, chunked


def _dechunk(buf: bytearray, start: int) -> tuple[int, bytes | None]:
    """Decode a chunked body starting at ``start``: (end offset, body) or (0, None) if partial."""
    pos = start
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return 0, None
        try:
            size = int(bytes(buf[pos:eol]).split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise _BadRequest(400, "Bad chunk size") from None
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n", pos)   # skip trailers up to the blank line
            while end >= 0 and end != pos:
                pos = end + 2
                end = buf.find(b"\r\n", pos)
            if end < 0:
                return 0, None
            return end + 2, b"".join(parts)
        if len(buf) < pos + size + 2:
            return 0, None
        parts.append(bytes(buf[pos:pos + size]))
        pos += size + 2
        if pos - start > _MAX_BODY:
            raise _BadRequest(413, "Request body too large")


def make_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The worker threads that run requests while a portal ``latency`` is set."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="b24-latency")


async def serve(dispatcher: Dispatcher, host: str, port: int, *,
                executor: concurrent.futures.Executor,
                ssl_context: ssl.SSLContext | None = None,
                backlog: int = 1024) -> asyncio.AbstractServer:
    """Start listening; returns the server (its first socket tells the bound port)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: HttpProtocol(dispatcher, executor), host, port,
        backlog=backlog, ssl=ssl_context, reuse_address=True)
