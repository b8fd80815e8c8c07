"""Wire failures over real sockets, against a tiny scripted HTTP server.

The emulator shows a portal's behaviour; this server shows what a network or a proxy in
front of a portal can do: answer with a redirect or an HTML page, drop the connection after
reading a request, or not answer in time. Each connection answers with the next step of a
script.
"""

from __future__ import annotations

import functools
import gzip
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client import RetryPolicy
from b24_dagster.errors import ConnectError, OutcomeUnknownError, ProtocolError

CODE = "socketcode123456"
OK = b'{"result":{"item":{"id":1}},"time":{"start":1.0,"operating":0.01}}'
MIB = b" " * (1 << 20)


@functools.cache
def _gzip_bomb() -> bytes:
    """64 KiB of gzip that inflate to a 64 MiB JSON answer."""
    return gzip.compress(b'{"result":"' + b"0" * (64 << 20) + b'"}', compresslevel=9)


def _answer(status: str, body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


#: The same answer in each way HTTP/1.1 may frame it (RFC 9112 sections 6 and 7).
FRAMINGS = {
    "chunked": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in (OK[:10], OK[10:]))
                + b"0\r\nX-Trailer: 1\r\n\r\n"),
    "gzip": _answer("200 OK", gzip.compress(OK), "Content-Encoding: gzip\r\n"),
    "until_close": b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK,
    "continue": b"HTTP/1.1 100 Continue\r\n\r\n" + _answer("200 OK", OK),
}

#: Answers that must never be taken for a whole one (each ends the connection).
BROKEN = {
    # gzip cut in the middle, with a Content-Length that matches what was sent
    "gzip_cut": _answer("200 OK", gzip.compress(OK)[:-12], "Content-Encoding: gzip\r\n"),
    # two lengths that disagree (RFC 9110 section 8.6: an error)
    "two_lengths": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 12, %d\r\n\r\n" % len(OK)) + OK,
    # a protocol switch is not an interim answer to skip
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" + OK,
}


class ScriptServer:
    """Serves one scripted step per request: ``ok``, ``drop``, ``slow``, ``redirect``, ``html``,
    ``endless`` (a chunked body that never ends) or ``gzip_bomb`` (64 KiB that inflate to 64 MiB)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.script: list[str] = []
        self.requests: list[bytes] = []
        self.body_bytes_sent = 0
        self.connections = 0
        self.closed = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/rest/1/{CODE}/"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _read_request(self, f: socket.SocketIO | object) -> bytes | None:
        reader = f  # a buffered reader
        head = b""
        while True:
            line = reader.readline()  # type: ignore[attr-defined]
            if not line:
                return None
            head += line
            if line in (b"\r\n", b"\n"):
                break
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return head + reader.read(length)  # type: ignore[attr-defined]

    def _conn(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                request = self._read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                step = self.script.pop(0) if self.script else "ok"
                if step == "drop":
                    return
                if step == "slow":
                    self._stop.wait(1.0)
                    return
                if step == "redirect":
                    conn.sendall(_answer("302 Found", b"", f"Location: https://elsewhere.example/rest/1/{CODE}/\r\n"))
                elif step == "endless":
                    self._send_endless(conn)
                    return
                elif step == "gzip_bomb":
                    conn.sendall(_answer("200 OK", _gzip_bomb(), "Content-Encoding: gzip\r\n"))
                elif step == "ok_then_close":  # a server's idle timeout, right after answering
                    conn.sendall(_answer("200 OK", OK))
                    return
                elif step in BROKEN:
                    conn.sendall(BROKEN[step])
                    return
                elif step in FRAMINGS:
                    conn.sendall(FRAMINGS[step])
                    if step == "until_close":
                        return
                elif step == "html":
                    conn.sendall(_answer("502 Bad Gateway", b"<html><body>502</body></html>"))
                else:
                    conn.sendall(_answer("200 OK", OK))
        except OSError:
            return
        finally:
            reader.close()
            conn.close()
            self.closed += 1

    def _send_endless(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n%s\r\n" % (len(MIB), MIB)
        conn.sendall(b"1\r\n{\r\n")
        while not self._stop.is_set() and self.body_bytes_sent < 1024 * len(MIB):
            conn.sendall(piece)  # raises once the client has hung up
            self.body_bytes_sent += len(MIB)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ScriptServer]:
    srv = ScriptServer()
    yield srv
    srv.close()


def _client(url: str, **kwargs: object) -> Bitrix24Client:
    kwargs.setdefault("requests_per_second", None)
    kwargs.setdefault("retry", RetryPolicy(max_retries=2, backoff_base=0.01))
    return Bitrix24Client(url, share_limits=False, **kwargs)  # type: ignore[arg-type]


def test_keep_alive_connection_is_reused(server: ScriptServer) -> None:
    with _client(server.url) as client:
        for _ in range(5):
            client.call("crm.item.get", {"id": 1})
    assert len(server.requests) == 5 and server.connections == 1
    assert server.requests[0].startswith(f"POST /rest/1/{CODE}/crm.item.get HTTP/1.1".encode())
    assert b"Connection: keep-alive" in server.requests[0]


@pytest.mark.parametrize("step", sorted(FRAMINGS))
def test_every_framing_of_an_answer_is_read(server: ScriptServer, step: str) -> None:
    server.script = [step, "ok"]
    with _client(server.url) as client:
        assert client.call("crm.item.add", {"fields": {"title": "x"}}).result == {"item": {"id": 1}}
        assert client.call("crm.item.add", {"fields": {"title": "y"}}).result == {"item": {"id": 1}}
        assert client.stats.retries == 0 and client.stats.unknown_outcomes == 0
    assert len(server.requests) == 2
    # an answer that ended with the connection is never followed by a request on it
    assert server.connections == (2 if step == "until_close" else 1)


def test_connection_the_server_closed_while_idle_is_not_used_for_a_write(server: ScriptServer) -> None:
    server.script = ["ok_then_close", "ok"]
    with _client(server.url) as client:
        client.call("crm.item.get", {"id": 1})
        deadline = time.monotonic() + 5
        while server.closed < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.closed == 1
        assert client.call("crm.item.add", {"fields": {"title": "x"}}).result == {"item": {"id": 1}}
        assert client.stats.retries == 0 and client.stats.unknown_outcomes == 0
    assert len(server.requests) == 2 and server.connections == 2


def test_connection_dropped_after_a_write_is_unknown(server: ScriptServer) -> None:
    server.script = ["drop"]
    with _client(server.url) as client, pytest.raises(OutcomeUnknownError) as info:
        client.call("crm.item.add", {"fields": {"title": "x"}})
    assert len(server.requests) == 1, "a write must not be sent twice"
    assert CODE not in str(info.value) and client.stats.unknown_outcomes == 1


def test_connection_dropped_after_a_read_is_retried(server: ScriptServer) -> None:
    server.script = ["drop"]
    with _client(server.url) as client:
        assert client.call("crm.item.get", {"id": 1}).result == {"item": {"id": 1}}
        assert client.stats.retries == 1
    assert len(server.requests) == 2


def test_read_timeout_write_unknown_read_retried(server: ScriptServer) -> None:
    server.script = ["slow"]
    with _client(server.url, timeout=(1.0, 0.3)) as client:
        with pytest.raises(OutcomeUnknownError, match="no answer"):
            client.call("crm.item.update", {"id": 1, "fields": {}})
        server.script = ["slow"]
        assert client.call("crm.item.list").status == 200


def test_redirect_is_not_followed(server: ScriptServer) -> None:
    server.script = ["redirect"]
    with _client(server.url) as client, pytest.raises(ProtocolError, match="redirect") as info:
        client.call("server.time")
    assert len(server.requests) == 1
    assert CODE not in str(info.value) and "elsewhere" not in str(info.value)


@pytest.mark.parametrize("step", ["endless", "gzip_bomb"])
def test_an_answer_is_read_only_up_to_max_response_bytes(server: ScriptServer, step: str) -> None:
    limit = 2 << 20
    server.script = [step]
    with _client(server.url, max_response_bytes=limit) as client, \
            pytest.raises(ProtocolError, match="max_response_bytes") as info:
        client.call("server.time")
    assert len(server.requests) == 1, "an oversized answer is not asked for again"
    assert CODE not in str(info.value)
    if step == "endless":  # the client stopped reading and hung up
        assert server.body_bytes_sent < 64 * len(MIB)
    server.script = [step]
    with _client(server.url, max_response_bytes=limit) as client, pytest.raises(OutcomeUnknownError):
        client.call("crm.item.add", {"fields": {"title": "x"}})
    assert len(server.requests) == 2


def test_html_page_read_retried_write_unknown(server: ScriptServer) -> None:
    server.script = ["html"]
    with _client(server.url) as client:
        assert client.call("server.time").status == 200
        server.script = ["html"]
        with pytest.raises(OutcomeUnknownError, match="HTML"):
            client.call("crm.item.delete", {"id": 1})


def test_refused_connection_is_retried_then_raised() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with _client(f"http://127.0.0.1:{port}/rest/1/{CODE}/") as client, \
            pytest.raises(ConnectError) as info:
        client.call("crm.item.add", {"fields": {}})
    assert client.stats.requests == 3  # a write that was never sent is safe to repeat
    assert CODE not in str(info.value) and CODE not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_debug_logging_never_shows_the_code(server: ScriptServer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    server.script = ["ok", "drop", "ok"]
    with caplog.at_level(logging.DEBUG), _client(server.url) as client:
        logging.getLogger().setLevel(logging.DEBUG)
        client.call("server.time")
        client.call("server.time")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/rest/1/***/server.time" in text  # urllib3's request line, redacted
    assert CODE not in text
    assert CODE not in caplog.text


def test_the_user_agent_names_this_library_only(server: ScriptServer) -> None:
    with _client(server.url) as client:
        client.call("server.time")
    head = server.requests[0].split(b"\r\n\r\n", 1)[0].decode()
    [agent] = [line for line in head.split("\r\n") if line.lower().startswith("user-agent:")]
    assert re.fullmatch(r"User-Agent: b24-dagster/\d[\w.+-]*", agent), agent


def test_a_write_never_goes_out_on_a_connection_idle_past_keepalive_idle(server: ScriptServer) -> None:
    with _client(server.url) as client:
        client.call("crm.item.get", {"id": 1})
        client.call("crm.item.add", {"fields": {"title": "x"}})  # at once: the same connection
        assert server.connections == 1
        client._transport.keepalive_idle = -1.0  # every connection counts as idle too long
        client.call("crm.item.get", {"id": 1})  # a read may still use it
        assert server.connections == 1
        client.call("crm.item.add", {"fields": {"title": "y"}})
        assert server.connections == 2, "the write went out on a new connection"
    assert len(server.requests) == 4


@pytest.mark.parametrize("step", sorted(BROKEN))
def test_a_broken_answer_is_never_read_as_a_whole_one(server: ScriptServer, step: str) -> None:
    server.script = [step]
    with _client(server.url) as client:
        assert client.call("crm.item.get", {"id": 1}).result == {"item": {"id": 1}}
        assert client.stats.retries == 1
        server.script = [step]
        with pytest.raises(OutcomeUnknownError) as info:
            client.call("crm.item.add", {"fields": {"title": "x"}})
    assert len(server.requests) == 3, "the write was not sent again"
    assert CODE not in str(info.value)
