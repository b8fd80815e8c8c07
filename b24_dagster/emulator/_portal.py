"""The portal facade: one ``handle(PortalRequest) -> PortalResponse`` for the HTTP layer.

Order of checks for each HTTP request: webhook auth (401 ``NO_AUTH_FOUND``), the v3 body
format (400 ``INVALIDJSONEXCEPTION``), the leaky bucket (503 ``QUERY_LIMIT_EXCEEDED``, nothing
runs), the v3 ``Idempotency-Key``, then the method: unknown (404), outside the webhook's scopes
(403 ``insufficient_scope``), blocked by its operating budget (429 ``OPERATION_TIME_LIMIT``),
else it runs and its simulated cost is charged. ``batch`` runs its commands through the same
per-command path; the outer batch is not charged.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import (  # noqa: F401  (registers the methods)
    _methods_activity,
    _methods_crm,
    _methods_currency,
    _methods_deal_contacts,
    _methods_duplicates,
    _methods_eventlog,
    _methods_import,
    _methods_productrows,
    _methods_reference,
    _methods_stagehistory,
    _methods_tasks,
    _methods_types,
    _methods_userfields,
)
from ._batch import Outcome, run_batch_v2, run_batch_v3
from ._idempotency import IdempotencyCache, fingerprint, valid_key
from ._jsonout import DateFormatter, dumps, time_object, time_text
from ._limits import LeakyBucket, OperatingBudget
from ._methods_core import REGISTRY, SCOPE_ALIASES, ApiError, Context, Result, v3_error
from ._settings import PortalSettings
from ._store import Store

__all__ = ["Portal", "PortalRequest", "PortalResponse"]

_SCOPE_ALIASES = SCOPE_ALIASES
_NO_AUTH = b'{"error":"NO_AUTH_FOUND","error_description":"Wrong authorization data"}'
_QUERY_LIMIT = b'{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}'
_ZERO_STATS = ("requests", "refused_503", "blocked_429", "unauthorized_401", "commands", "writes",
               "errors", "batches", "replays", "internal_errors")


@dataclass(slots=True)
class PortalRequest:
    """One HTTP request, decoded by the HTTP layer."""

    api_version: int                 # 2 (/rest/...) or 3 (/rest/api/...)
    method: str                      # as in the URL, minus a `.json` suffix; matched case-insensitively
    params: Any                      # dict from query/form/JSON (merged), or list (v3 batch)
    user_id: str | None = None       # from /rest/{user_id}/{code}/...
    code: str | None = None          # webhook code from the path, or the `auth` param
    body_format: str = "json"        # "json" | "form" | "query" | "multipart" | "none"
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    client_ip: str = "127.0.0.1"


@dataclass(slots=True)
class PortalResponse:
    """The portal's answer; the HTTP layer adds content-type and writes it."""

    status: int
    body: bytes                      # serialized JSON
    headers: list[tuple[str, str]]   # extra headers
    committed: bool                  # True when this request changed state
    commands: int                    # commands executed (1 for a plain call)


class Portal:
    """An emulated Bitrix24 portal: state, limits, methods. Thread-safe (one lock)."""

    def __init__(self, settings: PortalSettings | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings if settings is not None else PortalSettings()
        self.clock = clock
        self._lock = threading.RLock()
        self.store = Store(self.settings.state_path)
        self.bucket = LeakyBucket(self.settings.rate, self.settings.burst)
        self.budget = OperatingBudget(self.settings.operating_limit, self.settings.operating_window)
        self.idempotency = IdempotencyCache(self.settings.idempotency_ttl, self.store, self.clock())
        self.fmt = DateFormatter(self.settings.utc_offset)
        self.stats: dict[str, int] = dict.fromkeys(_ZERO_STATS, 0)
        self._ctx = Context(self.store, self.settings, 0.0, self.fmt, 2, self.settings.user_id)
        self._allowed = self._allowed_scopes()
        self.last_traceback = ""
        self._chain: tuple[float, str] | None = None

    def _allowed_scopes(self) -> frozenset[str]:
        scopes = self.settings.scopes
        return frozenset(name for name in set(scopes) | set(_SCOPE_ALIASES)
                         if any(s in scopes for s in _SCOPE_ALIASES.get(name, (name,))))

    # ---- administration ---------------------------------------------------------------
    def webhook_path(self, api_version: int = 2) -> str:
        """``/rest/1/<code>/`` (v2) or ``/rest/api/1/<code>/`` (v3)."""
        base = "/rest/api/" if api_version == 3 else "/rest/"
        return f"{base}{self.settings.user_id}/{self.settings.code}/"

    def reset(self) -> None:
        """Empty the store (and its SQLite file), the limits, the kept answers and the stats."""
        with self._lock:
            self.store.reset()
            self.bucket.reset()
            self.budget.reset()
            self.idempotency.clear()
            self.stats.update(dict.fromkeys(_ZERO_STATS, 0))

    def configure(self, **changes: Any) -> None:
        """Change settings at run time (``rate``, ``burst``, ``scopes``, costs, limits, latency...)."""
        with self._lock:
            names = {f.name for f in dataclasses.fields(PortalSettings)}
            for key, value in changes.items():
                if key not in names:
                    raise TypeError(f"unknown portal setting {key!r}")
                if key in ("state_path", "utc_offset"):
                    raise ValueError(f"{key} cannot change at run time")
                if key == "scopes":
                    value = frozenset(value)
                setattr(self.settings, key, value)
            self.bucket.rate, self.bucket.burst = self.settings.rate, self.settings.burst
            self.budget.limit = self.settings.operating_limit
            self.budget.window = self.settings.operating_window
            self.idempotency.ttl = self.settings.idempotency_ttl
            self._ctx.user_id = self.settings.user_id
            self._allowed = self._allowed_scopes()

    def seed(self, entity: str, n: int, rng_seed: int = 0) -> None:
        """Add ``n`` deterministic records of ``deal``, ``lead``, ``contact``, ``company``, ``task``
        or ``eventlog`` (event log entries)."""
        if entity == "eventlog":
            with self._lock:
                self.store.eventlog.seed(n, rng_seed)
            return
        if entity not in self.store.tables:
            raise ValueError(f"unknown entity {entity!r}; one of {', '.join(self.store.tables)}")
        with self._lock:
            self.store.seed(entity, n, rng_seed)

    def counts(self) -> dict[str, int]:
        """Records per entity."""
        with self._lock:
            return self.store.counts()

    def close(self) -> None:
        """Commit and close the SQLite file, if any."""
        with self._lock:
            self.store.close()

    # ---- requests -----------------------------------------------------------------------
    def handle(self, request: PortalRequest) -> PortalResponse:
        """Answer one HTTP request."""
        with self._lock:
            response = self._handle(request)
        if self.settings.latency > 0:
            time.sleep(self.settings.latency)
        return response

    def _handle(self, req: PortalRequest) -> PortalResponse:
        stats = self.stats
        stats["requests"] += 1
        v3 = req.api_version == 3
        name = req.method.strip().strip("/").lower()
        if name.endswith(".json"):
            name = name[:-5]
        if req.code != self.settings.code or (
                req.user_id is not None and str(req.user_id) != str(self.settings.user_id)):
            stats["unauthorized_401"] += 1
            return PortalResponse(401, _NO_AUTH, [], False, 0)
        if v3 and req.body_format not in ("json", "none", "query"):
            return self._error(v3_error(400, "INVALIDJSONEXCEPTION", "Invalid JSON in the request body"), True)
        start = self.clock()
        # A portal logs a webhook's authorization in its event log (main-eventlog-tail.md).
        self.store.eventlog.log_authorization(int(self.settings.user_id), start, req.client_ip,
                                              req.headers.get("user-agent", ""), name)
        if not self.bucket.admit(start):
            stats["refused_503"] += 1
            return PortalResponse(503, _QUERY_LIMIT, [], False, 0)
        params = req.params if req.params is not None else {}
        if v3 and req.body_format == "query":
            params = {}   # v3 never reads parameters from the query string
        key = req.headers.get("idempotency-key") if v3 else None
        extra: list[tuple[str, str]] = []
        scope_key: tuple[str, str, str, str] | None = None
        digest = ""
        if key is not None:
            if not valid_key(key):
                return self._error(v3_error(400, "INVALIDIDEMPOTENCYKEYEXCEPTION",
                                            "The Idempotency-Key header must be 1-255 printable ASCII characters"), True)
            scope_key = (str(self.settings.code), str(self.settings.user_id), name, key)
            digest = fingerprint(params)
            kept = self.idempotency.lookup(scope_key, digest, start)
            if kept is False:
                return self._error(v3_error(422, "IDEMPOTENCYKEYREUSEDEXCEPTION",
                                            "The Idempotency-Key was already used with another request body"),
                                   True, [("Idempotency-Key", key)])
            if kept is not None:
                stats["replays"] += 1
                return PortalResponse(kept.status, kept.body,
                                      [("Idempotent-Replayed", "true"), ("Idempotency-Key", key)], False, 0)
            extra.append(("Idempotency-Key", key))
        try:
            if name == "batch":
                response = self._batch(params, v3, start)
            else:
                response = self._single(name, params, v3)
            if extra:
                response.headers.extend(extra)
                if scope_key is not None and response.status == 200:
                    # kept in the same commit as the writes: a restart never applies them twice
                    self.idempotency.keep(scope_key, digest, response.status, response.body, start)
        finally:
            self.store.flush()
        return response

    def _error(self, err: ApiError, v3: bool, headers: list[tuple[str, str]] | None = None,
               commands: int = 0) -> PortalResponse:
        self.stats["errors"] += 1
        if err.status == 429:
            self.stats["blocked_429"] += 1
        body = err.body_v3() if v3 and err.status != 429 else err.body_v2()
        return PortalResponse(err.status, dumps(body).encode(), headers or [], False, commands)

    def _single(self, name: str, params: Any, v3: bool) -> PortalResponse:
        if not isinstance(params, dict):
            params = {str(i): v for i, v in enumerate(params)} if isinstance(params, list) else {}
        out = self._execute(name, params, 3 if v3 else 2, False)
        if out.error is not None:
            return self._error(out.error, v3, commands=1)
        res = out.result
        assert res is not None
        text = '{"result":' + dumps(res.data)
        if not v3:
            if res.next is not None:
                text += f',"next":{res.next}'
            if res.total is not None:
                text += f',"total":{res.total}'
        text += ',"time":' + (out.time_text or "{}") + "}"
        return PortalResponse(200, text.encode(), [], res.wrote, 1)

    def _batch(self, params: Any, v3: bool, start: float) -> PortalResponse:
        self.stats["batches"] += 1
        self._chain = (start, repr(start))
        try:
            if v3:
                store = self.store
                text, ran, writes = run_batch_v3(params, self._execute, self.settings.max_batch,
                                                 store.begin, store.commit, store.rollback)
            else:
                text, ran, writes = run_batch_v2(params if isinstance(params, dict) else {},
                                                 self._execute, self.settings.max_batch)
        except ApiError as err:
            return self._error(err, v3)
        finally:
            self._chain = None
        finish = self.clock()
        now = int(finish)
        time_text = time_object(start, finish, self.fmt, operating=0,
                                operating_reset_at=now + self.settings.operating_window)
        body = '{"result":' + text + ',"time":' + time_text + "}"
        return PortalResponse(200, body.encode(), [], writes > 0, ran)

    def _execute(self, name: str, params: Any, version: int, in_batch: bool) -> Outcome:
        """Run one command: scope, operating budget, the method, the charge, its time object."""
        spec = REGISTRY.get((version, name))
        if spec is None:
            if version == 3:
                return Outcome(None, v3_error(404, "METHODNOTFOUNDEXCEPTION",
                                              f"Method `{name}` not found"), None)
            return Outcome(None, ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"), None)
        if spec.scope and spec.scope not in self._allowed:
            return Outcome(None, ApiError(
                403, "insufficient_scope",
                "" if in_batch else "The request requires higher privileges than provided by the webhook token",
                v3_code="BITRIX_REST_V3_EXCEPTION_INSUFFICIENTSCOPEEXCEPTION"), None)
        chain = self._chain
        if chain is not None and in_batch:
            t0, t0_text = chain   # a command of a batch starts when the previous one finished
        else:
            t0 = self.clock()
            t0_text = repr(t0)
        budget = self.budget
        usage = budget.usage(name, t0)
        if budget.limit > 0 and usage.total > budget.limit:
            self.stats["blocked_429"] += in_batch
            return Outcome(None, ApiError(429, "OPERATION_TIME_LIMIT",
                                          "Method is blocked due to operation time limit."), None)
        ctx = self._ctx
        ctx.now = t0
        ctx.api_version = version
        stats = self.stats
        stats["commands"] += 1
        result: Result | None = None
        error: ApiError | None = None
        try:
            result = spec.handler(ctx, params if isinstance(params, dict) else {})
        except ApiError as exc:
            error = exc
        except Exception:  # a bug of the emulator: answer as a portal would, keep the trace
            stats["internal_errors"] += 1
            self.last_traceback = traceback.format_exc()
            error = ApiError(500, "INTERNAL_SERVER_ERROR", "Internal server error")
        settings = self.settings
        cost = settings.method_costs.get(name)
        if cost is None:
            cost = result.cost if result is not None and result.cost is not None else (
                settings.write_cost if spec.writes else settings.command_cost)
        minute = usage.minute
        usage.buckets[minute] = usage.buckets.get(minute, 0.0) + cost
        usage.total += cost
        if error is not None:
            return Outcome(None, error, None)
        assert result is not None
        if result.wrote:
            stats["writes"] += 1
        t1 = self.clock()
        t1_text = repr(t1)
        if in_batch:
            self._chain = (t1, t1_text)
        return Outcome(result, None, time_text(
            t0, t0_text, t1, t1_text, self.fmt, usage.total,
            min(usage.buckets) * 60 + budget.window))
