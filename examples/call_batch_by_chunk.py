"""callBatchByChunk (seed 000): any number of commands, sequential chunks of 50."""

from __future__ import annotations

from _portal import webhook_url

from b24_dagster import Bitrix24Client


def main(url: str, n: int = 150) -> None:
    with Bitrix24Client(url, requests_per_second=None) as b24:
        calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"Deal {i + 1}"}})
                 for i in range(n)]
        response = b24.batch_by_chunk(calls, halt_on_error=False)
        if not response.is_success:
            raise SystemExit("API Error: " + "; ".join(response.error_messages))
        data = response.data()  # one list per chunk
        print("chunks:", len(data), "ids:", [chunk[0]["item"]["id"] for chunk in data])

        # Streaming: each chunk is handed out once and not kept (flat memory).
        updates = ({"method": "crm.item.update",
                    "params": {"entityTypeId": 2, "id": i + 1, "fields": {"comments": "updated"}}}
                   for i in range(n))
        for chunk in b24.batch_by_chunk(updates, halt_on_error=False):
            print("chunk", chunk.chunk_index, chunk.counts())


if __name__ == "__main__":
    with webhook_url() as url:
        main(url)
