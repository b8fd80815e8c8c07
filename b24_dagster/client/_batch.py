"""One batch request, v2 or v3: build it, send it through ``client._request``, parse the answer.

v2 (``POST {base}/batch``): ``{"halt": 0|1, "cmd": {key: "method?query"}}``. The answer
has five sections keyed by cmd key (``result``, ``result_error``, ``result_total``,
``result_next``, ``result_time``). The portal serializes each the PHP way: an empty section is
``[]``, keys ``0..n-1`` come back as a JSON array, any other keys as an object; both forms are
read everywhere. With ``halt`` the commands after the failing one are missing: ``not_run``.
A command missing from every section without a halt is an error of its own
(``MISSING_RESULT``).

v3 (``POST {v3 base}/batch``): a bare array of ``{method, query, as?, parallel}``, with
``parallel = not halt_on_error`` as the JS SDK sends it. The batch is all or nothing: a
failed one raises an API error in ``_request``, and every command gets that error. The
answer is an array in command order; a ``null`` entry stays ``None``; a missing one is
``MISSING_RESULT``.

When the whole request fails:

* :class:`~b24_dagster.errors.OutcomeUnknownError` (it may have run, no answer came back):
  every command that writes is ``unknown`` and is not re-sent; every read is ``error`` with
  code ``NO_RESPONSE`` (a read changes nothing, so the caller may simply run it again;
  ``_request`` has already repeated a batch made only of reads);
* any other failure (an API error, a connection never made, an answer that is not JSON):
  every command is ``error`` with that code; nothing is raised, so a chunked run goes on.

``request_id`` is sent as ``X-Request-ID``. On v3 a batch that writes also carries
``Idempotency-Key: {request_id}-{chunk_index}``: ``_request`` may then re-send it after a
lost answer, and the portal replays its first answer instead of running it twice.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from b24_dagster.errors import (
    ApiError,
    Bitrix24Error,
    CommandValidationError,
    OutcomeUnknownError,
    TransportError,
)

from ._commands import MAX_BATCH_COMMANDS, Command, is_write_method, normalize_calls
from ._encoding import encode_cmd, v3_command
from ._refs import has_result_ref, validate_v3_refs
from ._results import BatchResult, CommandResult

__all__ = ["check_request_id", "execute_batch", "new_request_id", "run_batch"]

_KEYS = [str(i) for i in range(MAX_BATCH_COMMANDS * 2)]
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")


def new_request_id() -> str:
    """A fresh request id (32 hex digits)."""
    return uuid.uuid4().hex


def check_request_id(request_id: str | None) -> str:
    """A caller's request id, checked (printable ASCII, 1-200 characters), or a fresh one.

    Raises:
        CommandValidationError: The id could not travel as an HTTP header or as the base of
            an ``Idempotency-Key`` (at most 255 printable ASCII characters).
    """
    if request_id is None:
        return new_request_id()
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise CommandValidationError(
            f"request_id must be 1-200 printable ASCII characters without spaces, "
            f"got {request_id!r}")
    return request_id


def run_batch(client: Any, calls: Any, *, halt_on_error: bool = True,
              return_ajax_result: bool = False, api_version: int = 2,
              request_id: str | None = None) -> BatchResult:
    """Run at most 50 commands in one batch request (the seeds' ``callBatch``/``BatchV3.make``).

    Args:
        client: The :class:`~b24_dagster.client.Bitrix24Client`.
        calls: A list of ``(method, params)``, a list of ``{method, params[, as]}``, or a
            mapping of named commands.
        halt_on_error: v2: stop at the first failing command. v3: sent as
            ``parallel = not halt_on_error`` (a v3 batch is all or nothing either way).
        return_ajax_result: :meth:`BatchResult.data` gives per-command results.
        api_version: 2 or 3.
        request_id: Sent as ``X-Request-ID``; on v3 the base of the ``Idempotency-Key``
            (a fresh id when None).

    Returns:
        The per-command results. Per-command and whole-request failures are in the
        result, never raised.

    Raises:
        CommandValidationError: Before anything is sent, for a malformed command, more than
            50, or a v3 ``$ref`` that names no earlier command.
    """
    commands, named = normalize_calls(calls, allow_named=True, max_commands=MAX_BATCH_COMMANDS)
    if api_version == 3:
        validate_v3_refs(commands)
    rid = check_request_id(request_id)
    return execute_batch(client, commands, named=named, halt_on_error=halt_on_error,
                         return_ajax_result=return_ajax_result, api_version=api_version,
                         request_id=rid, chunk_index=0)


def execute_batch(client: Any, commands: Sequence[Command], *, named: bool = False,
                  halt_on_error: bool = True, return_ajax_result: bool = False,
                  api_version: int = 2, request_id: str, chunk_index: int = 0,
                  x_request_id: str | None = None) -> BatchResult:
    """Send validated commands as one batch and parse the answer (never raises for failures).

    Args:
        client: The client whose ``_request`` sends the batch.
        commands: At most 50 validated commands.
        named: Whether the cmd keys are the commands' names (else ``0..n-1``).
        halt_on_error: See :func:`run_batch`.
        return_ajax_result: See :func:`run_batch`.
        api_version: 2 or 3.
        request_id: The base of the ``Idempotency-Key`` (v3 writes).
        chunk_index: The chunk's position in a chunked run.
        x_request_id: The ``X-Request-ID`` (``request_id`` when None).
    """
    methods = [c.method for c in commands]
    writes = any(_writes(m) for m in set(methods))
    idempotency_key = None
    if api_version == 3:
        payload: Any = [v3_command(c.method, c.params, alias=c.alias, parallel=not halt_on_error)
                        for c in commands]
        if writes:
            idempotency_key = f"{request_id}-{chunk_index}"
    else:
        keys = [c.key for c in commands] if named else _KEYS[:len(commands)]
        payload = {"halt": 1 if halt_on_error else 0,
                   "cmd": {k: encode_cmd(c.method, c.params) for k, c in zip(keys, commands,
                                                                               strict=True)}}
    stats = getattr(client, "stats", None)
    before = stats.snapshot() if stats is not None else None
    time_obj = None
    replayed = False
    try:
        envelope = client._request("batch", payload, api_version=api_version, writes=writes,
                                   methods=methods, idempotency_key=idempotency_key,
                                   request_id=x_request_id or request_id)
        if api_version == 3:
            envelope = _whole_v3_answer(client, envelope, payload, len(commands), writes=writes,
                                        methods=methods, idempotency_key=idempotency_key,
                                        request_id=x_request_id or request_id)
    except OutcomeUnknownError as exc:
        rows = _unknown(commands, chunk_index, str(exc))
    except ApiError as exc:
        rows = _failed(commands, chunk_index, exc.code or f"HTTP_{exc.status}", exc.description
                       or str(exc))
    except TransportError as exc:
        rows = _failed(commands, chunk_index, _code_of(exc), str(exc))
    except CommandValidationError:
        raise
    except Bitrix24Error as exc:
        rows = _failed(commands, chunk_index, _code_of(exc), str(exc))
    else:
        body = envelope.body
        time_obj = body.get("time")
        replayed = envelope.replayed
        if api_version == 3:
            rows = parse_v3(commands, body.get("result"), chunk_index, time_obj)
        else:
            keys = [c.key for c in commands] if named else _KEYS[:len(commands)]
            rows = parse_v2(commands, keys, body.get("result"), chunk_index,
                            halt_on_error=halt_on_error)
            rows = _resend_blocked(client, commands, keys, rows, halt_on_error=halt_on_error,
                                   chunk_index=chunk_index,
                                   request_id=x_request_id or request_id)
    delta = (stats - before) if before is not None else None
    return BatchResult(rows, named=named, return_ajax_result=return_ajax_result,
                       api_version=api_version, chunk_index=chunk_index, time=time_obj,
                       replayed=replayed, stats=delta)


_BLOCKED = "OPERATION_TIME_LIMIT"


def _resend_blocked(client: Any, commands: Sequence[Command], keys: Sequence[str],
                    rows: list[CommandResult], *, halt_on_error: bool, chunk_index: int,
                    request_id: str) -> list[CommandResult]:
    """Send again the commands of a v2 batch that the operating-time limit refused.

    Inside a batch a blocked command fails alone with ``OPERATION_TIME_LIMIT`` and never
    runs, so sending it again (after the client waited for the method's reset, which
    ``_request`` does) cannot duplicate anything. Under ``halt`` the commands left
    ``not_run`` behind it go too, unless another error stopped the batch. A chunk whose
    commands refer to each other (``$result[...]``) is left as it is.
    """
    retry = getattr(client, "retry", None)
    for _ in range(retry.max_retries if retry is not None else 0):
        blocked = [r.status == "error" and r.error_code == _BLOCKED for r in rows]
        if not any(blocked) or any(has_result_ref(c.params) for c in commands):
            return rows
        halted_by_block = halt_on_error and not any(
            r.status == "error" and not b for r, b in zip(rows, blocked, strict=True))
        again = [i for i, r in enumerate(rows)
                 if blocked[i] or (halted_by_block and r.status == "not_run")]
        subset = [commands[i] for i in again]
        sub_keys = [keys[i] for i in again]
        payload = {"halt": 1 if halt_on_error else 0,
                   "cmd": {k: encode_cmd(c.method, c.params) for k, c in zip(sub_keys, subset,
                                                                             strict=True)}}
        methods = [c.method for c in subset]
        writes = any(_writes(m) for m in set(methods))
        if hasattr(client, "stats"):
            client.stats.retries += 1
        try:
            envelope = client._request("batch", payload, api_version=2, writes=writes,
                                       methods=methods, request_id=request_id)
        except OutcomeUnknownError as exc:
            fresh = _unknown(subset, chunk_index, str(exc))
        except (ApiError, TransportError):
            return rows   # not sent or refused as a whole: the blocked rows stay true
        else:
            fresh = parse_v2(subset, sub_keys, envelope.body.get("result"), chunk_index,
                             halt_on_error=halt_on_error)
        rows = list(rows)
        for i, row in zip(again, fresh, strict=True):
            rows[i] = row
    return rows


def _v3_entries_match(envelope: Any, n: int) -> bool:
    result = envelope.body.get("result")
    return not isinstance(result, list) or len(result) == n


def _whole_v3_answer(client: Any, envelope: Any, payload: Any, n: int, *, writes: bool,
                     methods: Sequence[str], idempotency_key: str | None,
                     request_id: str) -> Any:
    """The v3 answer with one entry per command, asking again while that is safe.

    A v3 batch answer whose ``result`` array has another length than the batch cannot be
    matched to its commands (the entries carry no key), so it is never read by position.
    A read, or a write behind an ``Idempotency-Key`` (whose copy is replayed, not re-run), is
    sent again; a write that cannot be repeated is an unknown outcome: it ran, but which
    entry belongs to which command is lost.
    """
    retry = getattr(client, "retry", None)
    attempts = retry.max_retries if retry is not None else 0
    attempt = 0
    while not _v3_entries_match(envelope, n):
        got = len(envelope.body["result"])
        why = f"batch: the v3 answer has {got} results for {n} commands"
        if (writes and not idempotency_key) or attempt >= attempts:
            if writes:
                if hasattr(client, "stats"):
                    client.stats.unknown_outcomes += 1
                raise OutcomeUnknownError(why + "; the outcome of each command is unknown",
                                          method="batch", status=envelope.status)
            return envelope   # parse_v3 reports every row as an error
        attempt += 1
        if hasattr(client, "stats"):
            client.stats.retries += 1
        envelope = client._request("batch", payload, api_version=3, writes=writes,
                                   methods=methods, idempotency_key=idempotency_key,
                                   request_id=request_id)
    return envelope


_write_rule: dict[str, bool] = {}


def _writes(method: str) -> bool:
    found = _write_rule.get(method)
    if found is None:
        found = is_write_method(method)
        if len(_write_rule) < 10_000:
            _write_rule[method] = found
    return found


def _code_of(exc: Bitrix24Error) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper() + "_ERROR"


def _failed(commands: Sequence[Command], chunk_index: int, code: str,
            description: str) -> list[CommandResult]:
    return [CommandResult(c.index, c.key, c.method, chunk_index, "error", None, code, description)
            for c in commands]


def _unknown(commands: Sequence[Command], chunk_index: int, why: str) -> list[CommandResult]:
    rows = []
    for c in commands:
        if _writes(c.method):
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "unknown", None,
                                      "OUTCOME_UNKNOWN", why))
        else:
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "error", None,
                                      "NO_RESPONSE", why))
    return rows


def _section(raw: Any) -> Mapping[str, Any]:
    """A v2 answer section as a mapping by cmd key (PHP sends 0..n-1 keys as an array)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list):
        if len(raw) <= len(_KEYS):
            return dict(zip(_KEYS, raw, strict=False))
        return {str(i): v for i, v in enumerate(raw)}
    return {}


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_v2(commands: Sequence[Command], keys: Sequence[str], inner: Any, chunk_index: int,
             *, halt_on_error: bool) -> list[CommandResult]:
    """Per-command results of a v2 batch answer's ``result`` object.

    Args:
        commands: The commands, in cmd order.
        keys: Their cmd keys.
        inner: The answer's ``result`` object (the five sections).
        chunk_index: The chunk's position in a chunked run.
        halt_on_error: Whether the batch was sent with ``halt``.
    """
    if not isinstance(inner, Mapping):
        return _failed(commands, chunk_index, "PROTOCOL_ERROR",
                       "the batch answer has no result sections")
    results = _section(inner.get("result"))
    errors = _section(inner.get("result_error"))
    totals = _section(inner.get("result_total"))
    nexts = _section(inner.get("result_next"))
    times = _section(inner.get("result_time"))
    rows: list[CommandResult] = []
    halted = False
    for c, key in zip(commands, keys, strict=True):
        err = errors.get(key) if errors else None
        if err is not None:
            if isinstance(err, Mapping):
                code, text = err.get("error"), err.get("error_description")
            else:
                code, text = err, None
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "error", None,
                                      "" if code is None else str(code),
                                      None if text is None else str(text), times.get(key)))
            halted = halted or halt_on_error
        elif key in results:
            value = results[key]
            time = times.get(key) if times else None
            total = _int(totals.get(key)) if totals else None
            next_ = _int(nexts.get(key)) if nexts else None
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "ok", value,
                                      None, None, time, total, next_))
        elif halted:
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "not_run", None,
                                      "NOT_RUN", "the batch halted at an earlier error"))
        else:
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "error", None,
                                      "MISSING_RESULT",
                                      "the portal's answer has no result for this command"))
    return rows


def parse_v3(commands: Sequence[Command], result: Any, chunk_index: int,
             time_obj: Mapping[str, Any] | None = None) -> list[CommandResult]:
    """Per-command results of a successful v3 batch answer's ``result`` array."""
    if isinstance(result, Mapping):  # not seen in the docs; read it by alias or index
        entries = [result.get(c.alias or "", result.get(str(i), _MISSING))
                   for i, c in enumerate(commands)]
    elif isinstance(result, list):
        entries = result
    else:
        return _failed(commands, chunk_index, "PROTOCOL_ERROR",
                       "the v3 batch answer has no result array")
    rows: list[CommandResult] = []
    n = len(entries)
    if isinstance(result, list) and n != len(commands):
        # The entries carry no key: with one missing, every later one would be misread.
        return _failed(commands, chunk_index, "MISSING_RESULT",
                       f"the v3 batch answer has {n} results for {len(commands)} commands")
    for i, c in enumerate(commands):
        entry = entries[i] if i < n else _MISSING
        if entry is _MISSING:
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "error", None,
                                      "MISSING_RESULT",
                                      "the portal's answer has no result for this command",
                                      time_obj))
        else:
            rows.append(CommandResult(c.index, c.key, c.method, chunk_index, "ok", entry, None,
                                      None, time_obj))
    return rows


_MISSING = object()
