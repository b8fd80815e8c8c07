"""BatchByChunkV3.make (seed 001): any number of v3 commands; the combined successful results."""

from __future__ import annotations

from _portal import webhook_url

from b24_dagster import Bitrix24Client


def add_multiple_items(b24: Bitrix24Client, need_add: int, request_id: str) -> list[int]:
    calls = [("tasks.task.add", {"fields": {"title": f"Automatic task #{i + 1}"}}) for i in range(need_add)]
    response = b24.batch_by_chunk(calls, halt_on_error=True, api_version=3, request_id=request_id)
    if not response.is_success:
        raise RuntimeError("Problem: " + "; ".join(response.error_messages))
    return [row["item"]["id"] for row in response.data()]  # ordered, successful only


def main(url: str) -> None:
    with Bitrix24Client(url, requests_per_second=None) as b24:
        items = add_multiple_items(b24, 120, "batch-tasks-task-add")
        print(f"Retrieved {len(items)} items (expected 120): {items[:3]}...")


if __name__ == "__main__":
    with webhook_url() as url:
        main(url)
