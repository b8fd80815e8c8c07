"""callBatch (seed 002): up to 50 commands in one request; three formats; $result references."""

from __future__ import annotations

from _portal import webhook_url

from b24_dagster import Bitrix24Client

DEAL = 2


def main(url: str) -> None:
    with Bitrix24Client(url, requests_per_second=None) as b24:
        # Named commands give a mapping (halt_on_error defaults to True, as in the seed).
        response = b24.batch({"ServerTime": {"method": "server.time"},
                              "UserProfile": {"method": "user.current"}})
        if not response.is_success:
            raise SystemExit("API Error: " + "; ".join(response.error_messages))
        print("named:", response.data()["ServerTime"])

        # A list of (method, params) with return_ajax_result: per-command results, in order.
        created = b24.batch([("crm.item.add", {"entityTypeId": DEAL, "fields": {"title": "Batch deal"}}),
                             ["crm.item.list", {"entityTypeId": DEAL, "select": ["id"]}]],
                            return_ajax_result=True)
        for result in created.data():
            print("ajax:", result.key, result.status, result.total)

        # Links between commands: a later command reads an earlier one's result.
        linked = b24.batch({
            "FirstDeal": {"method": "crm.item.list",
                          "params": {"entityTypeId": DEAL, "order": {"id": "desc"}, "select": ["id"]}},
            "DealTasks": {"method": "tasks.task.list",
                          "params": {"filter": {"UF_CRM_TASK": "D_$result[FirstDeal][items][0][id]"}}},
        }, halt_on_error=False)
        print("linked:", [r.status for r in linked.results.values()])
        print(linked.to_arrow().select(["command_key", "status"]).to_pylist())


if __name__ == "__main__":
    with webhook_url() as url:
        main(url)
