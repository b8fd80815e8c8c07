"""``batch``: v2 (``cmd`` of ``method?query`` strings) and v3 (a JSON array, all-or-nothing).

v2 (PROTOCOL.md section 2):

* ``cmd`` is an object (named keys) or an array (keys 0..n-1); at most ``max_batch`` (50)
  commands, else 400 ``ERROR_BATCH_LENGTH_EXCEEDED`` for the whole request;
* each value is ``method?query``, the query decoded the PHP way (``_phpquery``);
* commands run in order; a value ``$result[key][path]...`` is replaced by that part of an
  earlier command's result (a value that is exactly one reference takes the referenced value,
  array or scalar; a reference inside a longer text is interpolated as text);
* **an unresolvable reference** (a key that did not run or failed, a path that does not exist,
  such as ``[49]`` after a page of fewer than 50 rows) becomes the empty string, as PHP would
  read a missing array element. Comparison filters against an empty value match nothing, so
  the chained page of a fast export after a short page comes back empty and no row is
  returned twice (b24pysdk's ``as_list_fast`` stops at the short page anyway);
* a nested ``batch`` fails that command with 405 ``ERROR_BATCH_METHOD_NOT_ALLOWED``;
  ``insufficient_scope`` and ``OPERATION_TIME_LIMIT`` fail per command too;
* ``halt`` (0/1/true/false): stop after the first failed command;
* the answer is HTTP 200 with the five sections serialized the PHP way (empty -> ``[]``,
  keys exactly 0..n-1 -> array, else object). Failed commands have no ``result_time``.

v3: a bare array of ``{method, query, as?, parallel?}`` (or the same as an object with keys
"0".."n-1", see :func:`v3_commands`); ``{"$ref": "alias.item.id"}`` and
``{"$refArray": "alias.field"}`` (over the earlier result's ``items``) are substituted; an
alias is the command's ``as`` or its index. A bad reference fails the batch with
``INVALIDSELECTEXCEPTION``. If any command fails, the writes of the earlier commands are
rolled back and the answer is that command's v3 error envelope. ``parallel`` is ignored
(commands always run in order). The result is an array in command order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._jsonout import Raw, dumps, plain
from ._methods_core import ApiError, Result, v3_error
from ._phpquery import parse_query

__all__ = ["Outcome", "run_batch_v2", "run_batch_v3", "v3_commands"]

_REF = re.compile(r"\$result\[([^\]]*)\]((?:\[[^\]]*\])*)")
_SEG = re.compile(r"\[([^\]]*)\]")


class Outcome:
    """What one command gave: a result or an error, its time object text, whether it wrote."""

    __slots__ = ("error", "result", "time_text")

    def __init__(self, result: Result | None, error: ApiError | None, time_text: str | None) -> None:
        self.result = result
        self.error = error
        self.time_text = time_text


#: ``execute(method_name_lower, params, api_version, in_batch) -> Outcome``
Execute = Callable[[str, Any, int, bool], Outcome]


def _truthy(v: Any) -> bool:
    return v in (True, 1, "1", "true", "True", "Y", "y", "yes")


def _resolve(results: dict[str, Any], key: str, path: str) -> tuple[bool, Any]:
    if key not in results:
        return False, None
    value = results[key]
    for seg in _SEG.findall(path):
        if isinstance(value, Raw):
            value = value.value
        if isinstance(value, dict):
            if seg not in value:
                return False, None
            value = value[seg]
        elif isinstance(value, list):
            if not (seg.isascii() and seg.lstrip("-").isdigit()) or not -len(value) <= int(seg) < len(value):
                return False, None
            value = value[int(seg)]
        else:
            return False, None
    return True, plain(value)


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if "$result[" not in value:
            return value
        m = _REF.fullmatch(value)
        if m:
            ok, found = _resolve(results, m.group(1), m.group(2))
            return found if ok else ""

        def repl(m: re.Match[str]) -> str:
            ok, found = _resolve(results, m.group(1), m.group(2))
            if not ok or found is None or isinstance(found, (dict, list)):
                return ""
            if found is True or found is False:
                return "1" if found else ""
            return str(found)

        return _REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    return value


def run_batch_v2(params: Any, execute: Execute, max_batch: int) -> tuple[str, int, int]:
    """Run a v2 batch; returns (the ``result`` section's JSON text, commands run, writes)."""
    cmd = params.get("cmd", params.get("CMD")) if isinstance(params, dict) else None
    if isinstance(cmd, list):
        cmds = {str(i): v for i, v in enumerate(cmd)}
    elif isinstance(cmd, dict):
        cmds = {str(k): v for k, v in cmd.items()}
    elif cmd in (None, ""):
        cmds = {}
    else:
        raise ApiError(400, "", "Parameter 'cmd' must be array.")
    if len(cmds) > max_batch:
        raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
    halt = _truthy(params.get("halt", params.get("HALT", 0)))
    # Each section is built as text: (key, JSON text) pairs, serialized the PHP way at the end.
    result: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []
    totals: list[tuple[str, str]] = []
    nexts: list[tuple[str, str]] = []
    times: list[tuple[str, str]] = []
    refs: dict[str, Any] = {}
    ran = writes = 0
    for key, text in cmds.items():
        text = text if isinstance(text, str) else str(text)
        name, _, query = text.partition("?")
        name = name.strip().strip("/").lower()
        if name.endswith(".json"):
            name = name[:-5]
        if name == "batch":
            errors.append((key, _NESTED))
            if halt:
                break
            continue
        cmd_params = parse_query(query)
        if "result" in query:   # "$result[" possibly percent-encoded ("%24result%5B")
            cmd_params = _substitute(cmd_params, refs)
        out = execute(name, cmd_params, 2, True)
        ran += 1
        if out.error is not None:
            errors.append((key, dumps(out.error.body_v2())))
            if halt:
                break
            continue
        res = out.result
        assert res is not None
        writes += res.wrote
        data = res.data
        result.append((key, data.text if type(data) is Raw else dumps(data)))
        refs[key] = data
        if res.total is not None:
            totals.append((key, str(res.total)))
        if res.next is not None:
            nexts.append((key, str(res.next)))
        times.append((key, out.time_text or "{}"))
    text = ('{"result":' + _section(result) + ',"result_error":' + _section(errors)
            + ',"result_total":' + _section(totals) + ',"result_next":' + _section(nexts)
            + ',"result_time":' + _section(times) + "}")
    return text, ran, writes


_NESTED = dumps({"error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
                 "error_description": "Method is not allowed for batch usage"})
_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_.:\-]*")


def _section(pairs: list[tuple[str, str]]) -> str:
    """A section the PHP way: empty -> ``[]``, keys exactly 0..n-1 -> array, else object."""
    if not pairs:
        return "[]"
    if all(k == str(i) for i, (k, _) in enumerate(pairs)):
        return "[" + ",".join(t for _, t in pairs) + "]"
    return "{" + ",".join(_key_json(k) + t for k, t in pairs) + "}"


_KEYS: dict[str, str] = {}


def _key_json(key: str) -> str:
    """``"key":`` (cached: batches reuse the same keys)."""
    text = _KEYS.get(key)
    if text is None:
        text = '"' + key + '":' if _SIMPLE_KEY.fullmatch(key) else dumps(key) + ":"
        if len(_KEYS) < 10_000:
            _KEYS[key] = text
    return text


def _v3_path(context: dict[str, Any], ref: Any, *, array: bool) -> Any:
    if not isinstance(ref, str) or "." not in ref:
        raise v3_error(400, "INVALIDSELECTEXCEPTION", f"Unable to resolve reference `{ref}`")
    alias, *path = ref.split(".")
    if alias not in context:
        raise v3_error(400, "INVALIDSELECTEXCEPTION", f"Unknown batch alias `{alias}` in `{ref}`")
    data = plain(context[alias])

    def walk(value: Any, segments: list[str]) -> Any:
        for seg in segments:
            if isinstance(value, dict) and seg in value:
                value = value[seg]
            elif isinstance(value, list) and seg.isascii() and seg.isdigit() and int(seg) < len(value):
                value = value[int(seg)]
            else:
                raise v3_error(400, "INVALIDSELECTEXCEPTION", f"Unable to resolve reference `{ref}`")
        return value

    if array:
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise v3_error(400, "INVALIDSELECTEXCEPTION", f"Unable to resolve reference `{ref}`")
        if path and path[0] == "items":
            path = path[1:]
        return [walk(it, path) for it in items]
    return walk(data, path)


def _substitute_v3(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$ref" in value:
            return _v3_path(context, value["$ref"], array=False)
        if len(value) == 1 and "$refArray" in value:
            return _v3_path(context, value["$refArray"], array=True)
        return {k: _substitute_v3(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_v3(v, context) for v in value]
    return value


def v3_commands(params: Any) -> list[Any]:
    """The commands of a v3 batch body: a JSON array, or an object with keys "0".."n-1".

    A portal decodes JSON the PHP way, where ``{"0": a, "1": b}`` is the same array as
    ``[a, b]``; the official JS SDK sends its commands so (``{ ...params }``), plus an
    ``auth`` key on OAuth calls, which is the credential and no command. The v2 ``cmd``
    format is ``INVALIDSELECTEXCEPTION`` (rest-v3.md, "Batch call"); anything else is the
    validation error.
    """
    if isinstance(params, list):
        return params
    if isinstance(params, dict):
        if "cmd" in params or "CMD" in params:
            raise v3_error(400, "INVALIDSELECTEXCEPTION",
                           "The v2 batch format (cmd) is not supported by REST v3")
        body = {k: v for k, v in params.items() if k != "auth"}
        if body.keys() == {str(i) for i in range(len(body))}:
            return [body[str(i)] for i in range(len(body))]
    raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error validating request object",
                   [{"message": "The batch must be an array of commands", "field": "batch"}])


def run_batch_v3(params: Any, execute: Execute, max_batch: int,
                 begin: Callable[[], None], commit: Callable[[], None],
                 rollback: Callable[[], None]) -> tuple[str, int, int]:
    """Run a v3 batch, all or nothing; returns (the ``result`` array's JSON text, commands, writes).

    Raises :class:`ApiError` (v3) when the batch fails, after rolling back its writes.
    """
    params = v3_commands(params)
    if len(params) > max_batch:
        raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded",
                       v3_code="ERROR_BATCH_LENGTH_EXCEEDED")
    context: dict[str, Any] = {}
    results: list[Any] = []
    ran = writes = 0
    begin()
    try:
        for index, entry in enumerate(params):
            if not isinstance(entry, dict) or not isinstance(entry.get("method"), str):
                raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION",
                               "Error validating request object",
                               [{"message": "Required field `method` is not specified",
                                 "field": f"{index}.method"}])
            name = entry["method"].strip().strip("/").lower()
            if name == "batch":
                raise v3_error(405, "METHODNOTALLOWEDEXCEPTION", "Method is not allowed for batch usage")
            query = _substitute_v3(entry.get("query") or {}, context)
            out = execute(name, query, 3, True)
            ran += 1
            if out.error is not None:
                raise out.error
            res = out.result
            assert res is not None
            writes += res.wrote
            results.append(res.data)
            data = res.data.value if isinstance(res.data, Raw) else res.data
            if isinstance(data, dict) and ("item" in data or "items" in data):
                context[str(index)] = res.data
                alias = entry.get("as")
                if isinstance(alias, str) and alias:
                    context[alias] = res.data
    except BaseException:   # an ApiError, or an emulator bug: undo the writes either way
        rollback()
        raise
    commit()
    return dumps(results), ran, writes
