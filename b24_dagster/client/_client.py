"""`Bitrix24Client`: the webhook client every other part of b24-dagster calls.

Plain calls go through :meth:`Bitrix24Client.call`; batches, chunked batches and list exports
are built in their own modules on top of :meth:`Bitrix24Client._request`, the one transport
seam (see ``docs/CONTRACTS.md``), which waits on the client bucket and the operating-time
budget, repeats what is safe to repeat, and maps error answers to :mod:`b24_dagster.errors`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import requests

from b24_dagster._redaction import install_log_redaction, register_secret
from b24_dagster.errors import (
    Bitrix24Error,
    CommandValidationError,
    ConfigurationError,
    OperationTimeLimitError,
    OutcomeUnknownError,
    ProtocolError,
    error_from_response,
)

from ._retry import Action, RetryPolicy, classify
from ._throttle import OperatingBudget, RateLimiter, state_file_for
from ._transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    Envelope,
    MaybeSent,
    RawAnswer,
    Transport,
    decode_json,
    encode_json,
)
from ._webhook import WebhookUrl

if TYPE_CHECKING:
    from ._chunked import ChunkedBatchRun
    from ._results import BatchResult

__all__ = ["Bitrix24Client", "CallResult", "ClientStats", "bound_by", "is_write_method"]

log = logging.getLogger("b24_dagster.client")

_METHOD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$")
_READ_VERBS = frozenset({
    "get", "list", "fields", "current", "time", "tail", "count", "search", "info",
    "getlist", "getfields", "getdata", "getbyid", "getone", "getcount", "find", "query",
    "scope", "methods", "method", "profile", "access", "feature", "documentation", "openapi",
    "history", "export", "settings", "userfields", "items", "types", "status",
})


@functools.cache
def default_user_agent() -> str:
    """``b24-dagster/<version>``, the version as installed (``0`` when it is not installed)."""
    try:
        version = importlib.metadata.version("b24-dagster")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"b24-dagster/{version}"


def is_write_method(method: str) -> bool:
    """Guess whether a method may change portal state, from its name.

    ``*.get``, ``*.list``, ``*.fields``, ``user.current``, ``server.time`` and similar
    read-only verbs are reads; everything else (``add``, ``update``, ``delete``, ``set``,
    and any verb not known to be read-only) counts as a write, the safe side for retries.
    """
    last = method.rsplit(".", 1)[-1].lower()
    return last not in _READ_VERBS and not method.lower().endswith(".fields.get")


@dataclass(frozen=True, slots=True)
class CallResult:
    """The answer to one plain call.

    Attributes:
        result: The ``result`` of the answer (a v3 answer keeps its ``item``/``items`` object).
        time: The ``time`` object, when given.
        total: ``total`` of a v2 list call.
        next: ``next`` of a v2 list call (absent on the last page).
        status: The HTTP status.
    """

    result: Any
    time: Mapping[str, Any] | None = None
    total: int | None = None
    next: int | None = None
    status: int = 200


def bound_by(throttle_wait_seconds: float, operating_wait_seconds: float) -> str:
    """Which limit held a run back: ``requests`` (the bucket), ``operating_time`` (a method's
    budget) or ``none`` (neither made it wait), by the seconds waited on each."""
    if operating_wait_seconds > throttle_wait_seconds:
        return "operating_time"
    return "requests" if throttle_wait_seconds > 0 else "none"


@dataclass(slots=True)
class ClientStats:
    """Counters of a client; ``after - before`` gives a run's delta.

    Attributes:
        requests: HTTP requests sent (every attempt counts).
        retries: Attempts repeated after a failure.
        refused: 503 QUERY_LIMIT_EXCEEDED answers seen.
        blocked: 429 OPERATION_TIME_LIMIT answers seen, and batch commands the portal
            blocked with OPERATION_TIME_LIMIT.
        throttle_wait_seconds: Seconds spent waiting on the client bucket.
        operating_wait_seconds: Seconds spent waiting on the operating-time budget.
        unknown_outcomes: Requests whose outcome is unknown (OutcomeUnknownError raised).
    """

    requests: int = 0
    retries: int = 0
    refused: int = 0
    blocked: int = 0
    throttle_wait_seconds: float = 0.0
    operating_wait_seconds: float = 0.0
    unknown_outcomes: int = 0

    @property
    def bound_by(self) -> str:
        """``requests``, ``operating_time`` or ``none``: the limit the client waited on most."""
        return bound_by(self.throttle_wait_seconds, self.operating_wait_seconds)

    def snapshot(self) -> ClientStats:
        """A frozen copy of the counters now."""
        return replace(self)

    def __sub__(self, other: ClientStats) -> ClientStats:
        return ClientStats(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                              for f in fields(self)})

    def as_dict(self) -> dict[str, float]:
        """The counters as a plain dict (for metadata)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Bitrix24Client:
    """A Bitrix24 inbound-webhook client, at the portal's speed limit and never refused.

    Args:
        webhook_url: ``https://portal/rest/<uid>/<code>/`` or ``.../rest/api/<uid>/<code>/``.
        requests_per_second: The portal's bucket drain (2 standard, 5 Enterprise); None for
            no client-side limit (on-premise portals without limits).
        burst: The portal's bucket size (50 standard, 250 Enterprise).
        api_version: The default REST version, 2 or 3.
        timeout: ``(connect, read)`` seconds.
        max_retries: Repeats of a failed request, where repeating is safe.
        operating_limit: The portal's operating-time budget per method (seconds per 10 min).
        request_time_limit: How long the portal lets one request run (a cloud portal: 60 s);
            with the read timeout it bounds how long a write whose answer was lost may still
            commit (:func:`._reconcile.commit_window`). Raise it for a portal of your own whose
            PHP runs longer.
        share_limits: Share the bucket and the per-method operating-time balances with other
            processes on this machine (True: the default folder, see :mod:`._throttle`; a
            path: that folder; False: in-process).
        verify: TLS verification: True, or the path of a CA bundle (False is refused for
            non-loopback hosts).
        session: A ``requests.Session`` to send through (for custom adapters and tests).
        max_response_bytes: The largest answer accepted.
        user_agent: Replaces the default ``b24-dagster/<version>``.
        retry: A full :class:`RetryPolicy` (its ``max_retries`` wins over ``max_retries``).
        clock: Wall-clock seconds, for the limiters (tests).
        sleep: How to wait (tests).

    Example:
        >>> with Bitrix24Client("https://example.bitrix24.com/rest/1/code/") as client:
        ...     client.call("server.time").result  # doctest: +SKIP
    """

    def __init__(
        self,
        webhook_url: str | WebhookUrl,
        *,
        requests_per_second: float | None = 2.0,
        burst: int = 50,
        api_version: int = 2,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        max_retries: int = 5,
        operating_limit: float = 480.0,
        request_time_limit: float = 60.0,
        share_limits: bool | str | os.PathLike[str] = True,
        verify: bool | str = True,
        session: requests.Session | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        user_agent: str | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        install_log_redaction()
        self.webhook = WebhookUrl.parse(webhook_url)
        register_secret(self.webhook.code)
        if api_version not in (2, 3):
            raise ConfigurationError(f"api_version must be 2 or 3, got {api_version!r}")
        if verify is False and not self.webhook.is_loopback:
            raise ConfigurationError("verify=False is allowed for loopback hosts only")
        if requests_per_second is not None and not requests_per_second > 0:
            raise ConfigurationError("requests_per_second must be > 0, or None for no limit")
        if burst < 1 or max_response_bytes < 1:
            raise ConfigurationError("burst and max_response_bytes must be >= 1")
        self.api_version = api_version
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        self.stats = ClientStats()
        self.request_time_limit = float(request_time_limit)
        self.read_timeout = float(timeout[1] if isinstance(timeout, tuple) else timeout)
        #: Called right before each write leaves (after the rate limits were waited for); it
        #: may raise to stop the write unsent. The Dagster steps check their lease and stamp
        #: their journal here.
        self.before_write: Callable[[], None] | None = None
        #: `time.monotonic()` when the last write left (for how long it may still commit).
        self.last_write_at: float | None = None
        self._clock = clock
        self._sleep = sleep
        self._bases = {2: self.webhook.v2_base, 3: self.webhook.v3_base}
        self._limiter: RateLimiter | None = None
        state_file = None
        if requests_per_second is not None:  # limits shared only where the portal has them
            if share_limits:
                folder = None if share_limits is True else share_limits
                state_file = state_file_for(self.webhook.origin, folder)
            self._limiter = RateLimiter(requests_per_second, burst, state_file=state_file,
                                        clock=clock, sleep=sleep)
        self._budget = OperatingBudget(
            operating_limit, clock=clock, sleep=sleep,
            state_file=state_file.with_suffix(".operating") if state_file is not None else None)
        agent = user_agent or default_user_agent()
        self._transport = Transport(session, timeout=timeout, verify=verify,
                                    max_response_bytes=max_response_bytes, user_agent=agent,
                                    origin=self.webhook.origin)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections and the shared-limit file."""
        self._transport.close()
        if self._limiter is not None:
            self._limiter.close()
        self._budget.close()

    def __enter__(self) -> Bitrix24Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        rate = self._limiter.rate if self._limiter else None
        return (f"Bitrix24Client({self.webhook.redacted!r}, requests_per_second={rate}, "
                f"api_version={self.api_version})")

    @property
    def requests_per_second(self) -> float | None:
        """The client-side rate limit (None: no limit)."""
        return self._limiter.rate if self._limiter else None

    # -- public calls ----------------------------------------------------------------------

    def call(self, method: str, params: Any = None, *, api_version: int | None = None,
             writes: bool | None = None) -> CallResult:
        """Call one REST method.

        Args:
            method: The method name, e.g. ``"crm.item.get"``.
            params: Its parameters (JSON-able: a mapping, or a list for positional methods).
            api_version: 2 or 3; the client's default when None.
            writes: Whether the call may change portal state; guessed from the method name
                when None (see :func:`is_write_method`). Writes are never repeated blindly.

        Returns:
            The result, with ``time``, and ``total``/``next`` for v2 lists.

        Raises:
            CommandValidationError: Parameters that cannot be sent (naming where), before
                anything is sent.
            ApiError: The portal answered with an error (a subclass names its kind).
            OutcomeUnknownError: A write may have run but no answer came back.
            TransportError: No usable answer after the allowed retries.
        """
        from ._commands import check_params

        version = api_version or self.api_version
        params = {} if params is None else params
        check_params(params, where=method)
        envelope = self._request(
            method, params, api_version=version,
            writes=is_write_method(method) if writes is None else writes)
        body = envelope.body
        total, nxt = body.get("total"), body.get("next")
        return CallResult(
            result=body.get("result"), time=body.get("time"),
            total=total if isinstance(total, int) else None,
            next=nxt if isinstance(nxt, int) else None, status=envelope.status)

    def batch(self, calls: Any, halt_on_error: bool = True, return_ajax_result: bool = False,
              api_version: int | None = None, request_id: str | None = None) -> BatchResult:
        """Run at most 50 commands in one batch request (see :mod:`._batch`).

        Args:
            calls: A list of ``(method, params)``, a list of ``{method, params}``, or a
                mapping of named commands.
            halt_on_error: Stop at the first failing command.
            return_ajax_result: Give per-command results instead of plain data.
            api_version: 2 or 3; the client's default when None.
            request_id: Sent as ``X-Request-ID``; on v3 the base of the ``Idempotency-Key``.
        """
        from ._batch import run_batch

        return run_batch(self, calls, halt_on_error=halt_on_error,
                         return_ajax_result=return_ajax_result,
                         api_version=api_version or self.api_version, request_id=request_id)

    def batch_by_chunk(self, calls: Any, halt_on_error: bool = True,
                       api_version: int | None = None, request_id: str | None = None,
                       progress: Callable[..., Any] | None = None,
                       first_chunk: int = 0, reconcile: bool = False,
                       reconcile_field: str | None = None,
                       reconcile_delay_seconds: float | None = None,
                       bulk_import: bool = False) -> ChunkedBatchRun:
        """Run any number of commands as sequential batches of at most 50 (see :mod:`._chunked`).

        Args:
            calls: A list of ``(method, params)`` or of ``{method, params}``.
            halt_on_error: Stop each chunk at its first failing command.
            api_version: 2 or 3; the client's default when None.
            request_id: The base of each chunk's request id (and v3 idempotency keys).
            progress: Called after each chunk.
            first_chunk: The number of the first chunk when continuing an earlier run (its
                request ids and v3 idempotency keys go on from there).
            reconcile: Settle each chunk's lost creates by the key they carry (``ORIGIN_ID``,
                ``originId`` or ``reconcile_field``) instead of leaving them ``unknown``.
            reconcile_field: The key field of the creates.
            reconcile_delay_seconds: How long after it was sent a write may still commit: its
                lookup waits until then. None: the portal's request time limit or the read
                timeout, whichever is longer, plus a margin (:func:`._reconcile.commit_window`).
            bulk_import: Pack ``crm.item.add`` creates of one entity type into
                ``crm.item.batchImport`` calls: 20 records a call, 1,000 a request (see
                :mod:`._bulk`). Chosen explicitly: an import starts no automation rules and
                needs the CRM "import" permission. v2 only.
        """
        from ._chunked import ChunkedBatchRun

        return ChunkedBatchRun(self, calls, halt_on_error=halt_on_error,
                               api_version=api_version or self.api_version,
                               request_id=request_id, progress=progress, first_chunk=first_chunk,
                               reconcile=reconcile, reconcile_field=reconcile_field,
                               reconcile_delay_seconds=reconcile_delay_seconds,
                               bulk_import=bulk_import)

    def iter_list(self, method: str, params: Any = None, *, api_version: int | None = None,
                  **options: Any) -> Iterator[Any]:
        """Export every row of a list method, 50 chained pages per request (see :mod:`._listing`).

        Args:
            method: A list method, e.g. ``"crm.item.list"``.
            params: Its filter/select/order parameters.
            api_version: 2 or 3; the client's default when None.
            **options: Passed to the list exporter.
        """
        from ._listing import iter_list_pages

        return iter_list_pages(self, method, params,
                               api_version=api_version or self.api_version, **options)

    # -- the transport seam ----------------------------------------------------------------

    def _request(
        self,
        method: str,
        payload: Any,
        *,
        api_version: int,
        writes: bool,
        methods: Sequence[str] | Mapping[str, str] = (),
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> Envelope:
        """Send one request: throttle, POST, decode, retry what is safe (CONTRACTS.md).

        Args:
            method: ``"batch"`` or a REST method name.
            payload: The JSON-able body.
            api_version: 2 or 3.
            writes: Whether the request may change portal state.
            methods: The methods inside a batch, in cmd order (or cmd key -> method), for the
                per-method operating budget.
            idempotency_key: v3 only: sent as ``Idempotency-Key``; makes a write repeatable.
            request_id: Sent as ``X-Request-ID``.

        Returns:
            The decoded answer (never an error body: those raise).
        """
        if not _METHOD_NAME.match(method):
            raise CommandValidationError(f"invalid method name {method!r}")
        base = self._bases.get(api_version)
        if base is None:
            raise ConfigurationError(f"api_version must be 2 or 3, got {api_version!r}")
        try:
            body = encode_json(payload)
        except (TypeError, ValueError) as exc:
            raise CommandValidationError(f"{method}: parameters are not JSON-able: {exc}") \
                from None
        headers: dict[str, str] = {}
        if request_id:
            headers["X-Request-ID"] = request_id
        idempotent = bool(idempotency_key) and api_version == 3
        if idempotent:
            headers["Idempotency-Key"] = idempotency_key  # type: ignore[assignment]
        if method == "batch":
            budget_methods = tuple(dict.fromkeys(
                methods.values() if isinstance(methods, Mapping) else methods))
        else:
            budget_methods = (method,)
        url = base + method
        attempt = 0
        while True:
            self._wait_limits(budget_methods)
            if writes:
                if self.before_write is not None:
                    self.before_write()
                self.last_write_at = time.monotonic()
            self.stats.requests += 1
            try:
                raw = self._transport.post(url, body, headers, method=method,
                                           fresh=writes and not idempotent)
                envelope = self._decode(raw, method, api_version)
            except Bitrix24Error as exc:
                action = classify(exc, writes=writes, idempotent=idempotent)
                wait = self._after_failure(exc, action, budget_methods, attempt)
                if wait is None:
                    raise self._final(exc, action, method) from None
                attempt += 1
                self.stats.retries += 1
                log.debug("%s: %s; retry %d in %.2f s", method, type(exc).__name__, attempt, wait)
                if wait > 0:
                    self._sleep(wait)
                continue
            if envelope.status == 200 and isinstance(envelope.body, dict):
                self._observe(method, payload, methods, envelope.body)
            return envelope

    # -- internals -------------------------------------------------------------------------

    def _wait_limits(self, methods: Sequence[str]) -> None:
        if methods:
            waited = self._budget.wait(methods, self.retry.max_wait)
            if waited:
                self.stats.operating_wait_seconds += waited
        if self._limiter is not None:
            waited = self._limiter.acquire()
            if waited:
                self.stats.throttle_wait_seconds += waited

    def _after_failure(self, exc: Bitrix24Error, action: Action, methods: Sequence[str],
                       attempt: int) -> float | None:
        """Book-keeping after a failed attempt; the wait before repeating, or None to stop.

        A 429 pauses the method (every method of a batch, since the answer does not say
        which one was blocked) until its reset, which the next ``_wait_limits`` waits for.
        """
        if action is Action.REFUSED:
            self.stats.refused += 1
            if self._limiter is not None:
                self._limiter.refused()  # the next acquire() waits 1/rate
        elif action is Action.BLOCKED:
            self.stats.blocked += 1
            reset_at = exc.reset_at if isinstance(exc, OperationTimeLimitError) else None
            fallback = min(self.retry.blocked_wait * 2 ** attempt, self.retry.max_wait)
            for method in methods:
                self._budget.blocked(method, reset_at, fallback)
        if action in (Action.RAISE, Action.UNKNOWN) or attempt >= self.retry.max_retries:
            return None
        if action is Action.REFUSED and self._limiter is not None:
            return 0.0
        if action is Action.BLOCKED:
            return 0.0  # _wait_limits waits for the method's reset
        return self.retry.backoff(attempt)

    def _final(self, exc: Bitrix24Error, action: Action, method: str) -> Bitrix24Error:
        if action is Action.UNKNOWN or isinstance(exc, MaybeSent):
            self.stats.unknown_outcomes += 1
            return OutcomeUnknownError(
                f"{method}: the outcome is unknown, the request may have run: {exc}",
                method=method, status=getattr(exc, "status", None))
        return exc

    def _decode(self, raw: RawAnswer, method: str, api_version: int) -> Envelope:
        status, content = raw.status, raw.content
        if status == 413:  # refused before it ran: by the portal's web server or a proxy
            raise ProtocolError(f"{method}: the request is too large for the portal or a proxy in "
                                f"front of it (HTTP 413); it was refused, not run: send fewer or "
                                f"smaller commands a request", method=method, status=status)
        if not content.strip():
            raise ProtocolError(f"{method}: empty answer (HTTP {status})", method=method,
                                status=status)
        if content.lstrip()[:1] == b"<":
            raise ProtocolError(f"{method}: the portal answered with an HTML page "
                                f"(HTTP {status})", method=method, status=status)
        try:
            body = decode_json(content)
        except ValueError:
            raise ProtocolError(f"{method}: the answer is not JSON (HTTP {status}, "
                                f"{raw.headers.get('content-type', 'no content type')})",
                                method=method, status=status) from None
        is_dict = isinstance(body, dict)
        if status >= 400 or (is_dict and "error" in body and "result" not in body):
            raise error_from_response(status, body, method=method, api_version=api_version)
        if status != 200 or not is_dict or "result" not in body:
            raise ProtocolError(f"{method}: unexpected answer (HTTP {status}, no result)",
                                method=method, status=status)
        replayed = raw.headers.get("idempotent-replayed", "").lower() == "true"
        return Envelope(status, body, raw.headers, replayed)

    def _observe(self, method: str, payload: Any, methods: Sequence[str] | Mapping[str, str],
                 body: dict[str, Any]) -> None:
        if method != "batch":
            time_obj = body.get("time")
            if time_obj is not None:
                self._budget.observe(method, time_obj)
            return
        inner = body.get("result")
        if not methods or not isinstance(inner, dict):  # v3 batches: batch-level time only
            return
        if isinstance(methods, Mapping):
            keys_to_methods = {str(k): v for k, v in methods.items()}
        else:
            cmd = payload.get("cmd") if isinstance(payload, Mapping) else None
            keys = [str(k) for k in cmd] if isinstance(cmd, Mapping) else \
                [str(i) for i in range(len(methods))]
            keys_to_methods = dict(zip(keys, methods, strict=False))
        blocked = self._budget.observe_batch(keys_to_methods, inner.get("result_time"),
                                             inner.get("result_error"))
        if blocked:
            self.stats.blocked += blocked
