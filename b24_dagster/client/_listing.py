"""The fast list export of PROTOCOL.md section 6: keyset by id, 50 chained pages per request.

v2: each request is one batch of 50 list commands ``p0..p49``, every one ordered by id
ascending, with ``start=-1`` (no count) and the filter ``>ID`` (``>id`` for crm.item.list):
``p0`` carries the last id seen as a literal, and ``p{i}`` takes it from the page before it
through a ``$result`` reference::

    p1: crm.item.list?...&filter[>id]=$result[p0][items][49][id]   (rows under "items")
    p1: crm.deal.list?...&filter[>ID]=$result[p0][49][ID]          (flat legacy lists)

So one request brings up to 2,500 rows; the export ends at the first page shorter than 50
(the later pages of that batch refer to a row that does not exist and are ignored), and takes
``ceil(rows / 2500)`` requests, plus one when ``rows`` is a multiple of 2,500. Keyset paging
by id neither misses nor repeats a row when records are added or removed during the export,
and memory holds one request's pages at a time.

v3 (``/rest/api/``, e.g. ``tasks.task.list``): a ``$ref`` to a row of a page shorter than
expected fails the whole v3 batch (all or nothing), so chained pages cannot end cleanly.
Instead each request is one page as large as the portal allows (``pagination.limit`` 1000),
keyset by ``["id", ">", last]`` with ``order {"id": "ASC"}``. A method that caps its pages
below the limit is detected (the export then stops at an empty page or one shorter than the
cap), so a capped page is never mistaken for the last one.

The caller's own filter and select are kept (the id is added to ``select`` when missing,
since the cursor needs it). An ``order`` other than by id ascending is refused: keyset paging
needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from b24_dagster.errors import BatchError, CommandValidationError

from ._encoding import encode_cmd

__all__ = ["ListShape", "iter_list_pages", "list_shape"]

PAGE = 50
PAGES_PER_BATCH = 50
V3_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ListShape:
    """How one v2 list method pages.

    Attributes:
        wrapper: The key the rows sit under in a result (``"items"``, ``"tasks"``), or None
            for a flat list.
        id_field: The id key in each row (``"id"`` or ``"ID"``).
        cursor_field: The id key in filter/order/select (``"id"`` or ``"ID"``).
    """

    wrapper: str | None
    id_field: str
    cursor_field: str


_SHAPES = {
    "crm.item.list": ListShape("items", "id", "id"),
    "tasks.task.list": ListShape("tasks", "id", "ID"),
    # crm-stage-history-list.md: rows under "items", UPPER keys
    "crm.stagehistory.list": ListShape("items", "ID", "ID"),
}


def list_shape(method: str, id_field: str | None = None) -> ListShape:
    """The paging shape of a v2 list method (flat, ``ID`` keyed, unless known otherwise)."""
    shape = _SHAPES.get(method.lower(), ListShape(None, "ID", "ID"))
    if id_field:
        shape = ListShape(shape.wrapper, id_field, shape.cursor_field)
    return shape


def _rows(result: Any, wrapper: str | None) -> list[Any] | None:
    if wrapper is None:
        if isinstance(result, Mapping):  # a PHP array with non 0..n-1 keys
            return list(result.values())
        return result if isinstance(result, list) else None
    if isinstance(result, Mapping):
        rows = result.get(wrapper)
        if isinstance(rows, Mapping):
            return list(rows.values())
        return rows if isinstance(rows, list) else None
    if result == []:  # PHP's empty array for an empty wrapper object
        return []
    return None


def _prepare(method: str, params: Any, cursor_field: str) -> tuple[dict[str, Any],
                                                                  dict[str, Any], Any]:
    """The user's params without the cursor filter, the filter, and the start cursor."""
    base = dict(params or {})
    if not isinstance(params, Mapping | type(None)):
        raise CommandValidationError(f"{method}: list params must be a mapping")
    order = base.pop("order", None)
    if order:
        items = list(order.items()) if isinstance(order, Mapping) else None
        if (not items or len(items) != 1 or str(items[0][0]).lower() != "id"
                or str(items[0][1]).upper() != "ASC"):
            raise CommandValidationError(
                f"{method}: the export pages by id ascending; an order of {order!r} is not "
                f"supported (sort the rows after the export)")
    base.pop("start", None)
    flt = dict(base.pop("filter", None) or {})
    start = 0
    for key in (f">{cursor_field}", ">ID", ">id"):
        if key in flt:
            start = flt.pop(key)
    select = base.get("select")
    if select and "*" not in select and cursor_field not in select and \
            cursor_field.lower() not in [str(s).lower() for s in select]:
        base["select"] = [*select, cursor_field]
    return base, flt, start


def iter_list_pages(client: Any, method: str, params: Any = None, *, api_version: int = 2,
                    id_field: str | None = None,
                    page_callback: Callable[[int, int], Any] | None = None) -> Iterator[list[Any]]:
    """Yield every row of a list method, page by page, with the fewest requests.

    Args:
        client: The client whose ``_request`` sends each request.
        method: A list method: ``crm.item.list``, ``crm.deal.list`` (or any flat v2 list),
            ``tasks.task.list`` (v2 or v3).
        params: The method's parameters: ``filter``, ``select``, ``entityTypeId``... A
            ``filter`` ``>ID`` (``>id``) gives the starting id. ``order`` may only be by id
            ascending.
        api_version: 2 (50 chained pages per request) or 3 (one large page per request).
        id_field: The id key of each row, when it differs from the method's usual one.
        page_callback: Called with (pages so far, rows so far) after each page.

    Yields:
        Lists of row dicts, in id order, each row once.

    Raises:
        CommandValidationError: An order other than by id ascending.
        BatchError: A page's command failed (its code and text are on the error).
        ApiError, TransportError: The request failed as a whole.
    """
    rows_done = 0
    source = _iter_v3(client, method, params, id_field) if api_version == 3 else \
        _iter_v2(client, method, params, id_field)
    for pages, page in enumerate(source, 1):
        rows_done += len(page)
        if page_callback is not None:
            page_callback(pages, rows_done)
        yield page


def _iter_v2(client: Any, method: str, params: Any, id_field: str | None) -> Iterator[list[Any]]:
    shape = list_shape(method, id_field)
    base, flt, last = _prepare(method, params, shape.cursor_field)
    cursor_key = f">{shape.cursor_field}"
    base["order"] = {shape.cursor_field: "ASC"}
    base["start"] = -1
    path = f"[{shape.wrapper}][{PAGE - 1}][{shape.id_field}]" if shape.wrapper else \
        f"[{PAGE - 1}][{shape.id_field}]"
    keys = [f"p{i}" for i in range(PAGES_PER_BATCH)]
    methods = [method] * PAGES_PER_BATCH
    while True:
        cmd = {}
        for i, key in enumerate(keys):
            cursor = last if i == 0 else f"$result[{keys[i - 1]}]{path}"
            cmd[key] = encode_cmd(method, {**base, "filter": {**flt, cursor_key: cursor}})
        envelope = client._request("batch", {"halt": 0, "cmd": cmd}, api_version=2,
                                   writes=False, methods=methods)
        inner = envelope.body.get("result")
        inner = inner if isinstance(inner, Mapping) else {}
        results, errors = inner.get("result"), inner.get("result_error")
        for i, key in enumerate(keys):
            rows = _lookup(results, key, i)
            if rows is _NONE:
                err = _lookup(errors, key, i)
                code = err.get("error") if isinstance(err, Mapping) else None
                text = err.get("error_description") if isinstance(err, Mapping) else None
                raise BatchError(f"{method}: page {key} of the export failed: "
                                 f"{code or 'no result'}: {text or ''}".rstrip(": "),
                                 code=None if code is None else str(code), description=text)
            page = _rows(rows, shape.wrapper)
            if page is None:
                raise BatchError(f"{method}: unexpected list result shape "
                                 f"(rows under {shape.wrapper!r} expected)")
            if page:
                yield page
            if len(page) < PAGE:
                return
            last = page[-1][shape.id_field]


_NONE = object()


def _lookup(section: Any, key: str, index: int) -> Any:
    if isinstance(section, Mapping):
        return section.get(key, _NONE)
    return _NONE


def _iter_v3(client: Any, method: str, params: Any, id_field: str | None) -> Iterator[list[Any]]:
    field = id_field or "id"
    base = dict(params or {})
    order = base.pop("order", None)
    if order and dict(order) != {field: "ASC"} and \
            [(str(k).lower(), str(v).upper()) for k, v in dict(order).items()] != [(field, "ASC")]:
        raise CommandValidationError(f"{method}: the export pages by id ascending; an order of "
                                     f"{order!r} is not supported")
    user_filter = list(base.pop("filter", None) or [])
    pagination = dict(base.pop("pagination", None) or {})
    limit = int(pagination.get("limit") or V3_LIMIT)
    select = base.get("select")
    if select and field not in select:
        base["select"] = [*select, field]
    last: Any = None
    cap: int | None = None
    while True:
        flt = user_filter + ([[field, ">", last]] if last is not None else [])
        query = {**base, "filter": flt, "order": {field: "ASC"}, "pagination": {"limit": limit}}
        envelope = client._request(method, query, api_version=3, writes=False)
        result = envelope.body.get("result")
        page = result.get("items") if isinstance(result, Mapping) else None
        if not isinstance(page, list):
            raise BatchError(f"{method}: a v3 list answer has no result.items")
        if not page:
            return
        yield page
        last = page[-1][field]
        if len(page) >= limit:
            continue
        if cap is None:
            cap = len(page)  # maybe the portal's cap: one more request tells
            continue
        if len(page) < cap:
            return
