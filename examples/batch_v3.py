"""BatchV3.make (seeds 004, 003): REST v3, all or nothing, $ref / $refArray between commands."""

from __future__ import annotations

from _portal import webhook_url

from b24_dagster import Bitrix24Client
from b24_dagster.client._refs import ref_array


def get_multiple_items(b24: Bitrix24Client, item_ids: list[int], request_id: str) -> list[dict]:
    if not 1 <= len(item_ids) <= 50:
        raise ValueError("The number of elements must be between 1 and 50")
    calls = [("tasks.task.get", {"id": i, "select": ["id", "title"]}) for i in item_ids]
    response = b24.batch(calls, halt_on_error=True, return_ajax_result=True, api_version=3,
                         request_id=request_id)
    if not response.is_success:
        raise RuntimeError("Problem: " + "; ".join(response.error_messages))
    return [row.data["item"] for row in response.data() if row.is_success and row.data]


def main(url: str) -> None:
    with Bitrix24Client(url, requests_per_second=None) as b24:
        added = b24.batch([("tasks.task.add", {"fields": {"title": f"Task {i}",
                                                          }}) for i in range(3)],
                          api_version=3, request_id="example-add")
        ids = [r["item"]["id"] for r in added.data()]
        print("items:", get_multiple_items(b24, ids, "batch/tasks.task.get"))
        chained = b24.batch([
            {"method": "tasks.task.list", "as": "tasks", "params": {"select": ["id"]}},
            {"method": "tasks.task.list",
             "params": {"select": ["id", "title"], "filter": [["id", "in", ref_array("tasks.id")]]}},
        ], api_version=3)
        print("chained:", chained.is_success, chained.error_messages)


if __name__ == "__main__":
    with webhook_url() as url:
        main(url)
