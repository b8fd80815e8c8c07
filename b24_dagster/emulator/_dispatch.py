"""From a parsed HTTP request to the bytes of its answer: routing, parameters, faults, the log.

Routes (method names case-insensitive, ``.json`` optional, a trailing ``/`` allowed):

* ``/rest/{user_id}/{code}/{method}`` - REST v2 with a webhook;
* ``/rest/api/{user_id}/{code}/{method}`` - REST v3 with a webhook;
* ``/rest/{method}`` and ``/rest/api/{method}`` - the code comes as the ``auth`` parameter.

v2 parameters come from the query string and the body (urlencoded and multipart forms are
decoded the PHP way; JSON as is), merged as PHP does: a body key replaces the same query
key. v3 reads the JSON body only. ``.xml`` answers 400 (the emulator speaks JSON only).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ._faults import FaultInjector, FaultRule
from ._phpquery import parse_query
from ._portal import Portal, PortalRequest
from ._requestlog import RequestLog, RequestRecord, redact_path

__all__ = ["Answer", "Dispatcher", "Prepared", "RawRequest", "build_response"]

logger = logging.getLogger("b24_dagster.emulator")

_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_JSON = "application/json; charset=utf-8"
_HTML_PAGE = ("<html>\r\n<head><title>{s} {r}</title></head>\r\n<body>\r\n<center><h1>{s} {r}"
              "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
_QUERY_LIMIT = b'{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}'
_INTERNAL = b'{"error":"INTERNAL_SERVER_ERROR","error_description":"Internal server error"}'


def _error_body(code: str, text: str) -> bytes:
    return json.dumps({"error": code, "error_description": text}).encode()


def build_response(status: int, body: bytes, headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
                   *, content_type: str = _JSON, close: bool = False) -> bytes:
    """The whole HTTP/1.1 answer (status line, headers, body) as one buffer, for one write."""
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"]
    for name, value in headers:
        head.append(f"{name}: {value}\r\n")
    if close:
        head.append("Connection: close\r\n")
    head.append("\r\n")
    return "".join(head).encode("latin-1") + body


@dataclass(slots=True)
class RawRequest:
    """An HTTP request as parsed off the wire."""

    http_method: str
    target: str
    headers: dict[str, str]       # lower-case names; repeated headers joined with ", "
    body: bytes
    keep_alive: bool
    received: float


@dataclass(slots=True)
class Prepared:
    """A routed request with its fault decided, ready to run."""

    raw: RawRequest
    portal_request: PortalRequest | None   # None: answered without the portal (see ``early``)
    early: tuple[int, bytes] | None
    method: str
    api_version: int
    fault: str | None
    rule: FaultRule | None
    delay: float                            # seconds to wait before answering (slow fault)


@dataclass(slots=True)
class Answer:
    """What to send: the whole answer (None = close without answering) and whether to close."""

    data: bytes | None
    close: bool


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    boundary = ""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return {}
    pairs: list[str] = []
    for chunk in body.split(b"--" + boundary.encode("latin-1")):
        head, sep, value = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        name = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for attr in line.split(";")[1:]:
                    k, _, v = attr.strip().partition("=")
                    if k.lower() == "name":
                        name = v.strip('"')
        if name is None:
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        pairs.append(quote(name, safe="[]") + "=" + quote(value.decode("utf-8", "replace"), safe=""))
    return parse_query("&".join(pairs))


def decode_params(raw: RawRequest, query: str, v3: bool) -> tuple[Any, str]:
    """Parameters and body format (``json``/``form``/``multipart``/``query``/``none``)."""
    body = raw.body
    ctype = raw.headers.get("content-type", "").lower()
    body_params: Any = None
    fmt = "none"
    if body:
        if "json" in ctype or (not ctype and body[:1] in (b"{", b"[")):
            fmt = "json"
            try:
                body_params = json.loads(body)
            except ValueError:
                fmt = "invalid-json" if v3 else "json"
                body_params = {}
        elif ctype.startswith("multipart/form-data"):
            fmt, body_params = "multipart", _multipart(body, raw.headers.get("content-type", ""))
        else:
            fmt, body_params = "form", parse_query(body.decode("utf-8", "replace"))
    if v3:
        if fmt == "none" and query:
            return {}, "query"
        return (body_params if body_params is not None else {}), fmt
    query_params = parse_query(query) if query else {}
    if body_params is None:
        return query_params, ("query" if query else "none")
    if isinstance(body_params, dict) and query_params:
        return {**query_params, **body_params}, fmt
    return body_params, fmt


class Dispatcher:
    """Turns requests into answers against one :class:`Portal`; used by the asyncio server."""

    def __init__(self, portal: Portal, faults: FaultInjector, log: RequestLog) -> None:
        self.portal = portal
        self.faults = faults
        self.log = log

    def prepare(self, raw: RawRequest, client_ip: str) -> Prepared:
        """Route the request, decode its parameters and decide its fault."""
        path, _, query = raw.target.partition("?")
        parts = [p for p in path.split("/")]
        while parts and parts[-1] == "":
            parts.pop()
        v3 = len(parts) > 2 and parts[2] == "api"
        rest = parts[3:] if v3 else parts[2:]
        version = 3 if v3 else 2
        if len(parts) < 2 or parts[1] != "rest" or len(rest) not in (1, 3):
            return self._early(raw, 404, _error_body("ERROR_METHOD_NOT_FOUND", "Method not found!"))
        if raw.http_method not in ("GET", "POST"):
            return self._early(raw, 405, _error_body("INVALID_REQUEST", "Only GET and POST are supported"))
        name = rest[-1].lower()
        if name.endswith(".json"):
            name = name[:-5]
        elif name.endswith(".xml"):
            return self._early(raw, 400, _error_body(
                "INVALID_REQUEST", "XML answers are not supported by the emulator; use JSON"), version)
        params, fmt = decode_params(raw, query, v3)
        user_id = code = None
        if len(rest) == 3:
            user_id, code = rest[0], rest[1]
        elif isinstance(params, dict):
            auth = params.pop("auth", None)
            code = auth if isinstance(auth, str) else None
        fault = rule = None
        delay = 0.0
        if self.faults.active:
            decision = self.faults.decide(name, version)
            fault, rule = decision.kind, decision.rule
            if fault == "slow" and rule is not None:
                delay = rule.delay
            if decision.pre and rule is not None:
                early = _fault_answer(fault, rule)
                return Prepared(raw, None, early, name, version, fault, rule, 0.0)
        request = PortalRequest(version, name, params, user_id, code, fmt, raw.headers, client_ip)
        return Prepared(raw, request, None, name, version, fault, rule, delay)

    def _early(self, raw: RawRequest, status: int, body: bytes, version: int = 0) -> Prepared:
        return Prepared(raw, None, (status, body), "", version, None, None, 0.0)

    def respond(self, p: Prepared) -> Answer:
        """Run the request on the portal (unless answered early) and build its answer."""
        raw = p.raw
        close = not raw.keep_alive
        status, committed, commands = 0, False, 0
        data: bytes | None
        if p.fault == "close_before":
            data, close = None, True
        elif p.portal_request is None:
            assert p.early is not None
            status, body = p.early
            ctype = _JSON
            if p.fault == "html_error":
                ctype = "text/html; charset=utf-8"
            data = build_response(status, body, content_type=ctype, close=close)
        else:
            res = self.portal.handle(p.portal_request)
            status, committed, commands, body = res.status, res.committed, res.commands, res.body
            if p.fault == "close_after":
                data, close, status = None, True, 0
            else:
                if p.fault == "malformed_json":
                    body = body[: max(1, len(body) // 2)]
                elif p.fault == "v3_batch_drop" and status == 200:
                    body = self._drop_entry(body)
                data = build_response(status, body, res.headers, close=close)
        self._record(p, status, committed, commands)
        return Answer(data, close)

    def _drop_entry(self, body: bytes) -> bytes:
        doc = json.loads(body)
        result = doc.get("result") if isinstance(doc, dict) else None
        if isinstance(result, list) and result:
            del result[len(result) // 2]
            self.faults.count("v3_batch_drop")
            return json.dumps(doc, separators=(",", ":")).encode()
        return body

    def _record(self, p: Prepared, status: int, committed: bool, commands: int) -> None:
        raw = p.raw
        headers: Mapping[str, str] = raw.headers
        now = time.time()
        fault = p.fault
        if fault == "v3_batch_drop" and status != 200:
            fault = None
        path = redact_path(raw.target)
        self.log.append(RequestRecord(
            now, raw.http_method, path, p.api_version, p.method, status, committed, commands,
            fault, headers.get("x-request-id"), headers.get("idempotency-key"), now - raw.received))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s%s", raw.http_method, path, status or "closed",
                         f" [fault {fault}]" if fault else "")


def _fault_answer(kind: str | None, rule: FaultRule) -> tuple[int, bytes]:
    if kind == "storm_503":
        return 503, _QUERY_LIMIT
    if kind == "error_500":
        return 500, _INTERNAL
    if kind == "html_error":
        reason = _REASONS.get(rule.status, "Error")
        return rule.status, _HTML_PAGE.format(s=rule.status, r=reason).encode()
    return 0, b""   # close_before: nothing is sent
