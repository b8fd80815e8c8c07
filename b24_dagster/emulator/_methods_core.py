"""The method framework (context, results, errors, registry) and the core methods.

A method is a function ``(ctx, params) -> Result`` registered under its lower-case name
with its scope, whether it writes, and the API versions it exists in. It raises
:class:`ApiError` to fail the way a portal does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._entities import USERS
from ._jsonout import DateFormatter

if TYPE_CHECKING:
    from ._settings import PortalSettings
    from ._store import Store

__all__ = ["ApiError", "Context", "MethodSpec", "REGISTRY", "Result", "method", "v3_error"]


class ApiError(Exception):
    """A failed call: HTTP status, error code and description (v2 shape).

    ``v3_code`` (the ``BITRIX_REST_V3_EXCEPTION_...`` suffix) and ``validation`` are used
    when the call was made under ``/rest/api/``.
    """

    def __init__(self, status: int, code: str, description: str = "", *,
                 v3_code: str | None = None, validation: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.v3_code = v3_code
        self.validation = validation

    def body_v2(self) -> dict[str, Any]:
        """``{"error": code, "error_description": text}``."""
        return {"error": self.code, "error_description": self.description}

    def body_v3(self) -> dict[str, Any]:
        """``{"error": {"code": ..., "message": ..., "validation": [...]}}``."""
        err: dict[str, Any] = {"code": self.v3_code or self.code, "message": self.description}
        if self.validation is not None:
            err["validation"] = self.validation
        return {"error": err}


def v3_error(status: int, name: str, message: str,
             validation: list[dict[str, str]] | None = None) -> ApiError:
    """A v3 error ``BITRIX_REST_V3_EXCEPTION_<name>``."""
    code = f"BITRIX_REST_V3_EXCEPTION_{name}"
    return ApiError(status, code, message, v3_code=code, validation=validation)


@dataclass(slots=True)
class Result:
    """What a method returns: ``data`` (may contain ``Raw`` fragments), list paging, write flag."""

    data: Any
    total: int | None = None
    next: int | None = None
    wrote: bool = False
    #: Simulated seconds to charge instead of the per-command cost (an import, per record).
    cost: float | None = None


@dataclass(slots=True)
class Context:
    """What a method may use: the state, the settings, the time of the call, the caller."""

    store: Store
    settings: PortalSettings
    now: float
    fmt: DateFormatter
    api_version: int = 2
    user_id: int = 1


Handler = Callable[[Context, dict[str, Any]], Result]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A registered method."""

    name: str
    handler: Handler
    scope: str
    writes: bool = False
    versions: frozenset[int] = field(default_factory=lambda: frozenset({2}))


#: All methods by lower-case name and API version: ``REGISTRY[(2, "crm.item.get")]``.
REGISTRY: dict[tuple[int, str], MethodSpec] = {}


def method(name: str, scope: str, *, writes: bool = False,
           versions: tuple[int, ...] = (2,)) -> Callable[[Handler], Handler]:
    """Register a method handler under ``name`` for the given API versions."""

    def deco(fn: Handler) -> Handler:
        spec = MethodSpec(name, fn, scope, writes, frozenset(versions))
        for v in versions:
            REGISTRY[(v, name.lower())] = spec
        return fn

    return deco


# ---- core methods ------------------------------------------------------------------------

def user_record(ctx: Context, user_id: int) -> dict[str, Any]:
    """A user as ``user.current`` / ``user.get`` show it (UPPER keys, string ids)."""
    name, last, email, position = USERS.get(user_id, ("User", str(user_id), "", ""))
    return {
        "ID": str(user_id), "ACTIVE": True, "NAME": name, "LAST_NAME": last, "EMAIL": email,
        "LAST_LOGIN": ctx.fmt(ctx.now), "DATE_REGISTER": ctx.fmt(1690848000),
        "IS_ONLINE": "Y", "TIMESTAMP_X": "", "LAST_ACTIVITY_DATE": "", "PERSONAL_GENDER": "",
        "PERSONAL_BIRTHDAY": "", "WORK_POSITION": position, "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": [1],
    }


@method("server.time", "")
def server_time(ctx: Context, params: dict[str, Any]) -> Result:
    """The portal's clock, ISO 8601 with offset."""
    return Result(ctx.fmt(ctx.now))


@method("user.current", "user_basic")
def user_current(ctx: Context, params: dict[str, Any]) -> Result:
    """The webhook's user."""
    return Result(user_record(ctx, ctx.user_id))


#: What a portal knows of its users beyond ``USERS`` (``SECOND_NAME``, ``PERSONAL_CITY``, ...),
#: by user id; empty on a new emulator.
USER_DETAILS: dict[int, dict[str, Any]] = {}


def user_get_record(ctx: Context, user_id: int) -> dict[str, Any]:
    """A user as ``user.get`` shows it: user-get.md's keys (the dates it leaves as ``{}``)."""
    name, last, email, position = USERS.get(user_id, ("User", str(user_id), "", ""))
    record: dict[str, Any] = {
        "ID": str(user_id), "ACTIVE": True, "NAME": name, "LAST_NAME": last, "SECOND_NAME": "",
        "EMAIL": email, "LAST_LOGIN": ctx.fmt(ctx.now), "DATE_REGISTER": ctx.fmt(1690848000),
        "TIME_ZONE": "", "IS_ONLINE": "Y", "TIMESTAMP_X": {}, "LAST_ACTIVITY_DATE": {},
        "PERSONAL_GENDER": "", "PERSONAL_WWW": "", "PERSONAL_BIRTHDAY": "", "PERSONAL_MOBILE": "",
        "PERSONAL_CITY": "", "WORK_PHONE": "", "WORK_POSITION": position, "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": [1], "USER_TYPE": "employee",
    }
    record.update(USER_DETAILS.get(user_id, {}))
    return record


# user-get.md's filter prefixes, longest first
_USER_OPS = ("!=%", "!%=", "=%", "%=", "!@", "!%", ">=", "<=", "!=", "@", "%", ">", "<", "=", "!")


def _like(pattern: str, text: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.I | re.S) is not None


def _user_matches(record: dict[str, Any], key: str, value: Any) -> bool:
    """One condition of user.get's filter (user-get.md's prefixes; strings case-insensitive,
    a value with ``%`` under no prefix is a pattern, as the page's ``{"NAME": "Iv%"}``
    **[choice]**; a field users do not have is ignored **[choice]**)."""
    op = next((o for o in _USER_OPS if key.startswith(o)), "")
    field = key[len(op):]
    if field not in record:
        return True
    actual = record[field]
    values = [str(a) for a in (actual if isinstance(actual, list) else [actual])]
    wanted = [str(w) for w in (value if isinstance(value, list) else [value])]
    negate = op.startswith("!")
    base = op.lstrip("!") or "="
    if base in ("=", "@"):
        hit = any(_like(w, a) if "%" in w and op == "" else a.lower() == w.lower()
                  for a in values for w in wanted)
    elif base == "%":
        hit = any(w.lower() in a.lower() for a in values for w in wanted)
    elif base in ("=%", "%="):
        hit = any(_like(w, a) for a in values for w in wanted)
    else:
        def num(v: str) -> Any:
            return int(v) if v.lstrip("-").isdigit() else v
        compare = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
                   "<=": lambda a, b: a <= b}[base]
        try:
            hit = any(compare(num(a), num(wanted[0])) for a in values)
        except TypeError:
            hit = False
    return hit != negate


@method("user.get", "user_basic")
def user_get(ctx: Context, params: dict[str, Any]) -> Result:
    """The portal's users by user-get.md: ``filter``/``FILTER`` and top-level fields
    (``UF_DEPARTMENT``), ``sort``/``order`` (default ``ID`` ascending), ``start``, 50 a page."""
    filt = params.get("filter") if "filter" in params else params.get("FILTER")
    conditions = dict(filt) if isinstance(filt, dict) else {}
    sample = user_get_record(ctx, 1)
    for key, value in params.items():   # "any parameters from user.add" at the top level too
        field = key[len(next((o for o in _USER_OPS if key.startswith(o)), "")):]
        if field in sample and field not in ("SORT", "ORDER"):
            conditions.setdefault(key, value)
    rows = [user_get_record(ctx, i) for i in sorted(USERS)]
    rows = [r for r in rows if all(_user_matches(r, k, v) for k, v in conditions.items())]
    sort = str(params.get("sort") or params.get("SORT") or "ID").upper()
    desc = str(params.get("order") or params.get("ORDER") or "ASC").upper() == "DESC"
    rows.sort(key=lambda r: (int(r["ID"]),) if sort == "ID" else (str(r.get(sort, "")), int(r["ID"])),
              reverse=desc)
    try:
        start = max(int(str(params.get("start") or 0)), 0)
    except ValueError:
        start = 0
    size = ctx.settings.page_size
    page = rows[start:start + size]
    nxt = start + size if start + size < len(rows) else None
    return Result(page, total=len(rows), next=nxt)


@method("profile", "")
def profile(ctx: Context, params: dict[str, Any]) -> Result:
    """Basic information about the webhook's user."""
    name, last, _, _ = USERS.get(ctx.user_id, ("User", "", "", ""))
    return Result({"ID": str(ctx.user_id), "ADMIN": True, "NAME": name, "LAST_NAME": last,
                   "PERSONAL_GENDER": "", "TIME_ZONE": "", "TIME_ZONE_OFFSET": ctx.settings.utc_offset})


#: Scopes that grant the methods of another (``task`` and ``tasks``; ``user`` covers
#: ``user_basic``), as the portal's access check (``_portal``) reads them.
SCOPE_ALIASES = {"task": ("task", "tasks"), "user_basic": ("user_basic", "user"), "user": ("user",)}


def served_scopes() -> frozenset[str]:
    """The scopes of the methods the emulator serves, with the scopes that grant them."""
    scopes = {spec.scope for spec in REGISTRY.values() if spec.scope}
    return frozenset(alias for name in scopes for alias in SCOPE_ALIASES.get(name, (name,)))


@method("scope", "")
def scope(ctx: Context, params: dict[str, Any]) -> Result:
    """The webhook's scopes (``full=true``: every scope the portal knows), as
    ``api-reference/common/system/scope.md`` shows them: here only the scopes whose methods the
    emulator serves, so that a client never plans on a scope whose methods would answer 404."""
    full = str(params.get("full", "")).lower() in ("1", "true", "y")
    served = served_scopes()
    return Result(sorted(served if full else ctx.settings.scopes & served))


@method("methods", "")
def methods(ctx: Context, params: dict[str, Any]) -> Result:
    """The v2 methods available to the webhook."""
    names = sorted(spec.name for (v, _), spec in REGISTRY.items()
                   if v == 2 and (not spec.scope or spec.scope in ctx.settings.scopes))
    return Result(names)


@method("app.info", "")
def app_info(ctx: Context, params: dict[str, Any]) -> Result:
    """What a webhook reports as its application (keys as in ``common/system/app-info.md``).

    ``LANGUAGE_ID`` is the language prefix of ``LICENSE``, as on a portal.
    """
    return Result({"ID": 0, "CODE": "", "VERSION": 1, "STATUS": "L", "INSTALLED": True,
                   "PAYMENT_EXPIRED": "N", "DAYS": None, "LANGUAGE_ID": "ru", "LICENSE": "ru_project",
                   "LICENSE_TYPE": "project", "LICENSE_FAMILY": "project"})


@method("rest.scope.list", "", versions=(3,))
def rest_scope_list(ctx: Context, params: dict[str, Any]) -> Result:
    """v3: the webhook's scopes (those the emulator serves, as ``scope``)."""
    return Result({"items": sorted(ctx.settings.scopes & served_scopes())})


#: The company structure: the root (every user is in it) and three departments under it.
DEPARTMENTS: list[dict[str, Any]] = [
    {"ID": "1", "NAME": "Company", "SORT": 500, "UF_HEAD": "1"},
    {"ID": "2", "NAME": "Sales Department", "SORT": 500, "PARENT": "1"},
    {"ID": "3", "NAME": "Accounting", "SORT": 500, "PARENT": "1"},
    {"ID": "4", "NAME": "Marketing and Advertising Department", "SORT": 500, "PARENT": "1"},
]


@method("department.get", "department")
def department_get(ctx: Context, params: dict[str, Any]) -> Result:
    """Departments whose fields equal the given ones (``ID``, ``NAME``, ``PARENT``, ``UF_HEAD``,
    as department-get.md), ordered by ``sort`` (a field, default ``ID``) and ``order``."""
    rows = list(DEPARTMENTS)
    for key in ("ID", "NAME", "PARENT", "UF_HEAD"):
        wanted = params.get(key, params.get(key.lower()))
        if wanted not in (None, ""):
            rows = [r for r in rows if str(r.get(key, "")) == str(wanted)]
    sort = str(params.get("sort") or params.get("SORT") or "ID").upper()
    desc = str(params.get("order") or params.get("ORDER") or "ASC").upper() == "DESC"
    numeric = sort in ("ID", "SORT", "PARENT", "UF_HEAD")
    rows.sort(key=lambda r: (int(r.get(sort) or 0) if numeric else str(r.get(sort, ""))), reverse=desc)
    return Result(rows, total=len(rows))
