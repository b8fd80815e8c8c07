"""Normalization and validation of the seeds' three input formats, and v3/v2 references."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from b24_dagster.client._chunked import ChunkedBatchRun
from b24_dagster.client._commands import Command, is_write_method, normalize_calls
from b24_dagster.client._refs import find_result_refs, ref, ref_array, validate_v3_refs
from b24_dagster.errors import CommandValidationError

PARAMS = {"entityTypeId": 2, "select": ["id"]}


def test_three_formats_give_the_same_commands() -> None:
    tuples, named1 = normalize_calls([("crm.item.list", PARAMS), ["server.time"]])
    dicts, named2 = normalize_calls([{"method": "crm.item.list", "params": PARAMS},
                                     {"method": "server.time"}])
    assert not named1 and not named2
    assert tuples == dicts
    assert tuples[0] == Command(0, "0", "crm.item.list", PARAMS)
    assert tuples[1].params == {}
    named, is_named = normalize_calls({"deals": {"method": "crm.item.list", "params": PARAMS},
                                       "time": ["server.time", {}]})
    assert is_named
    assert [(c.index, c.key, c.method) for c in named] == [(0, "deals", "crm.item.list"),
                                                          (1, "time", "server.time")]


def test_alias_and_positional_params() -> None:
    [c], _ = normalize_calls([{"method": "tasks.task.list", "as": "tasks", "params": {}}])
    assert c.alias == "tasks"
    [c], _ = normalize_calls([("task.commentitem.add", [123, {"POST_MESSAGE": "x"}])])
    assert c.params == [123, {"POST_MESSAGE": "x"}]


@pytest.mark.parametrize(("calls", "message"), [
    ([("crm item.add", {})], "invalid method name"),
    ([("", {})], "invalid method name"),
    ([(".crm.add", {})], "invalid method name"),
    ([("crm.item.add?x=1", {})], "invalid method name"),
    ([(None, {})], "invalid method name"),
    ([("batch", {"cmd": {}})], "cannot contain a batch"),
    ([("BATCH", {})], "cannot contain a batch"),
    ([("crm.item.add", {"x": float("nan")})], "cannot be sent"),
    ([("crm.item.add", {"x": float("inf")})], "cannot be sent"),
    ([("crm.item.add", {"x": {1, 2}})], "cannot be sent"),
    ([("crm.item.add", {"x": object()})], "cannot be sent"),
    ([("crm.item.add", {"x": dt.datetime(2024, 1, 1)})], "naive datetime"),
    ([("crm.item.add", {"x": Decimal("NaN")})], "cannot be sent"),
    ([("crm.item.add", "fields=1")], "params must be a mapping"),
    ([("crm.item.add", {}, "extra")], "expected (method, params)"),
    ([{"method": "crm.item.add", "param": {}}], "unknown entries"),
    ([{"method": "crm.item.add", "as": "bad alias"}], "alias"),
    (["crm.item.add"], "expected (method, params)"),
    ([], "no commands"),
    ("crm.item.add", "calls must be a list"),
    ({"": ["server.time"]}, "names must be non-empty"),
    ({"a[0]": ["server.time"]}, "without brackets"),
])
def test_refusals_name_the_command(calls: object, message: str) -> None:
    with pytest.raises(CommandValidationError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        normalize_calls(calls)
    if isinstance(calls, list) and calls:
        assert info.value.index == 0
        assert "command '0'" in str(info.value)


def test_at_most_50_in_one_batch() -> None:
    normalize_calls([("server.time",)] * 50)
    with pytest.raises(CommandValidationError, match="at most 50"):
        normalize_calls([("server.time",)] * 51)


def test_accepted_value_types() -> None:
    params = {"a": [1, 2.5, True, None, "x", dt.date(2024, 1, 1),
                    dt.datetime(2024, 1, 1, tzinfo=dt.UTC), Decimal("1.10")], "b": (1, 2),
              "c": {1: "int key"}}
    normalize_calls([("crm.item.add", params)])


def test_chunked_refusals_before_anything_is_sent() -> None:
    class NoClient:
        def _request(self, *a: object, **k: object) -> None:
            raise AssertionError("nothing may be sent")

    with pytest.raises(CommandValidationError, match="named commands"):
        ChunkedBatchRun(NoClient(), {"a": ["server.time"]})
    calls = [("crm.item.add", {"fields": {"TITLE": "x"}})] * 120
    calls.append(("crm.item.get", {"id": "$result[0][item][id]"}))
    with pytest.raises(CommandValidationError, match="cross chunk") as info:
        ChunkedBatchRun(NoClient(), calls)
    assert info.value.index == 120
    with pytest.raises(CommandValidationError, match="cross chunk"):
        ChunkedBatchRun(NoClient(), [("tasks.task.list", {"filter": [["id", "in", ref_array("a.id")]]})])
    with pytest.raises(CommandValidationError, match="cannot be sent"):
        ChunkedBatchRun(NoClient(), [("crm.item.add", {})] * 70 + [("crm.item.add", {"x": float("nan")})])


def test_write_rule() -> None:
    for m in ("crm.item.add", "crm.item.update", "crm.deal.delete", "user.option.set",
              "tasks.task.complete", "im.message.send"):
        assert is_write_method(m), m
    for m in ("crm.item.get", "crm.item.list", "crm.item.fields", "user.current", "server.time",
              "crm.deal.userfield.list", "tasks.task.getlist"):
        assert not is_write_method(m), m


def test_v3_ref_markers() -> None:
    assert ref("task.item.id") == {"$ref": "task.item.id"}
    assert ref_array("tasks.id") == {"$refArray": "tasks.id"}
    for bad in ("nodot", "", "a..b", "a.b c", 5):
        with pytest.raises(CommandValidationError):
            ref(bad)  # type: ignore[arg-type]
    cmds, _ = normalize_calls([
        {"method": "tasks.task.list", "as": "tasks", "params": {"select": ["id"]}},
        {"method": "tasks.task.list", "params": {"filter": [["id", "in", ref_array("tasks.id")]]}},
        {"method": "tasks.task.get", "params": {"id": ref("0.items.0.id")}},
    ])
    validate_v3_refs(cmds)
    later, _ = normalize_calls([
        {"method": "tasks.task.get", "params": {"id": ref("later.item.id")}},
        {"method": "tasks.task.get", "as": "later", "params": {"id": 1}},
    ])
    with pytest.raises(CommandValidationError, match="not an earlier command") as info:
        validate_v3_refs(later)
    assert info.value.command_key == "0"
    own, _ = normalize_calls([{"method": "tasks.task.get", "params": {"id": ref("0.item.id")}}])
    with pytest.raises(CommandValidationError, match="not an earlier"):
        validate_v3_refs(own)


def test_v2_reference_detection() -> None:
    params = {"filter": {"UF_CRM_TASK": "D_$result[FirstDeal][items][0][id]"},
              "x": ["$result[a][0][ID]"]}
    assert find_result_refs(params) == ["FirstDeal", "a"]
    assert find_result_refs({"title": "no refs, $result only"}) == []
