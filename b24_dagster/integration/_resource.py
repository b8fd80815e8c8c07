"""`Bitrix24Resource`: the Dagster resource over one plain `Bitrix24Client` per portal.

The webhook URL is a secret (its path carries the webhook code), so it is passed as
`dg.EnvVar("BITRIX24_WEBHOOK_URL")`: Dagster resolves it when a run starts and never shows
its value in the UI. Several portals: leave `webhook_url` unset and name the portal in
`get_client(portal="eu")`; the URL then comes from `BITRIX24_WEBHOOK_URL__EU` (the prefix
is a setting). The resource never starts an emulator: the demo does that, not the library.
"""

from __future__ import annotations

import os
import re
from enum import Enum
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

if TYPE_CHECKING:
    from b24_dagster.client import Bitrix24Client

__all__ = ["DEFAULT_WEBHOOK_ENV", "PLAN_LIMITS", "Bitrix24Plan", "Bitrix24Resource", "portal_env_var"]

DEFAULT_WEBHOOK_ENV = "BITRIX24_WEBHOOK_URL"
"""The environment variable of the single-portal webhook URL."""

PLAN_LIMITS: dict[str, tuple[float | None, int]] = {
    "standard": (2.0, 50),
    "enterprise": (5.0, 250),
    "on_premise": (None, 50),
}
"""Requests per second and burst of the portal's leaky bucket, by plan (`None`: no limit)."""


class Bitrix24Plan(Enum):
    """A portal's plan, for its rate limit (`plan="enterprise"` is accepted as well)."""

    standard = "standard"
    enterprise = "enterprise"
    on_premise = "on_premise"


def portal_env_var(portal: str, prefix: str = DEFAULT_WEBHOOK_ENV + "__") -> str:
    """The environment variable that holds a portal's webhook URL.

    >>> portal_env_var("eu-west")
    'BITRIX24_WEBHOOK_URL__EU_WEST'
    """
    return prefix + re.sub(r"[^A-Za-z0-9]+", "_", portal).strip("_").upper()


class Bitrix24Resource(dg.ConfigurableResource):
    """A Bitrix24 portal (or several) reached through an incoming webhook.

    Example:
        ```python
        import dagster as dg
        from b24_dagster.integration import Bitrix24Resource, Bitrix24Storage

        defs = dg.Definitions(
            assets=[...],
            resources={
                "bitrix24": Bitrix24Resource(webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL")),
                "bitrix24_storage": Bitrix24Storage(),
            },
        )
        ```

    An Enterprise portal: `Bitrix24Resource(webhook_url=..., plan="enterprise")`; an
    on-premise one with no rate limit: `plan="on_premise"` (or `requests_per_second=None`).
    """

    webhook_url: str | None = Field(
        default=None,
        description=(
            "Incoming webhook URL, e.g. https://example.bitrix24.com/rest/1/<code>/. Pass it as "
            "dg.EnvVar('BITRIX24_WEBHOOK_URL') so that it is never shown in the UI. Leave unset "
            "for several portals: each then reads its URL from `portal_env_prefix` + PORTAL."
        ),
    )
    portal_env_prefix: str = Field(
        default=DEFAULT_WEBHOOK_ENV + "__",
        description="Prefix of the per-portal webhook variables (BITRIX24_WEBHOOK_URL__MAIN, ...).",
    )
    plan: Bitrix24Plan | None = Field(
        default=None,
        description=(
            "Shortcut for the plan's rate limit: standard 2 req/s burst 50, enterprise 5 req/s "
            "burst 250, on_premise no limit. Overrides requests_per_second and burst when set."
        ),
    )
    requests_per_second: float | None = Field(
        default=2.0,
        description="Client-side leaky bucket rate (requests per second); null for no limit.",
    )
    burst: int = Field(default=50, description="Client-side leaky bucket capacity (requests).")
    api_version: int = Field(default=2, description="REST API version: 2 or 3 (wire protocol).")
    connect_timeout: float = Field(default=10.0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(
        default=60.0, description="Seconds to wait for an answer (a batch may take a while)."
    )
    max_retries: int = Field(
        default=5,
        description="Retries of a request that is safe to repeat (refusals, 5xx on reads, ...).",
    )
    backoff_seconds: float = Field(
        default=0.5, description="First retry delay ceiling; it doubles (full jitter) per retry."
    )
    backoff_max_seconds: float = Field(default=30.0, description="Largest retry delay ceiling.")
    operating_limit_seconds: float = Field(
        default=480.0,
        description="The portal's execution-time budget per method (seconds per 10 minutes).",
    )
    request_time_limit_seconds: float = Field(
        default=60.0,
        description=(
            "How long the portal lets one request run (a cloud portal: 60 s). A write whose "
            "answer was lost is looked up only once it can no longer commit: this long (or "
            "read_timeout, if longer) after it was sent, plus a margin. Raise it for a portal "
            "of your own whose PHP runs longer."
        ),
    )
    share_limits: bool = Field(
        default=True,
        description=(
            "Share the rate-limit bucket with the other processes of this machine that call "
            "the same portal (Dagster runs each step in its own process)."
        ),
    )

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def limits(self) -> tuple[float | None, int]:
        """The effective (requests per second, burst) after the `plan` shortcut."""
        if self.plan is not None:
            return PLAN_LIMITS[Bitrix24Plan(self.plan).value]
        return self.requests_per_second, self.burst

    def webhook_variable(self, portal: str | None = None) -> str:
        """The name of the environment variable a portal's webhook comes from (for messages)."""
        return DEFAULT_WEBHOOK_ENV if portal is None else portal_env_var(portal, self.portal_env_prefix)

    def _webhook(self, portal: str | None) -> str:
        if portal is None:
            if not self.webhook_url:
                raise dg.Failure(
                    description=(
                        f"No Bitrix24 webhook URL: set the environment variable "
                        f"{DEFAULT_WEBHOOK_ENV} (passed as dg.EnvVar('{DEFAULT_WEBHOOK_ENV}')) "
                        "or configure `webhook_url` on the Bitrix24Resource."
                    ),
                    metadata={"variable": DEFAULT_WEBHOOK_ENV},
                    allow_retries=False,
                )
            return self.webhook_url
        name = self.webhook_variable(portal)
        # Read at run time, in the run's process: per-portal URLs are dynamic by nature.
        url = os.environ.get(name)
        if not url:
            raise dg.Failure(
                description=f"No webhook URL for portal {portal!r}: set the environment variable {name}.",
                metadata={"variable": name, "portal": portal},
                allow_retries=False,
            )
        return url

    def get_client(self, portal: str | None = None) -> Bitrix24Client:
        """The client of the portal (cached per resource instance and portal).

        Raises:
            dagster.Failure: the webhook URL is unset or malformed (the message names the
                variable and never contains the webhook code).
        """
        cache_key = portal or ""
        client = self._clients.get(cache_key)
        if client is None:
            client = self._build_client(self._webhook(portal), portal)
            self._clients[cache_key] = client
        return client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close the clients' pooled connections and shared-limit files."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _build_client(self, url: str, portal: str | None) -> Bitrix24Client:
        from b24_dagster.client import Bitrix24Client, RetryPolicy
        from b24_dagster.integration._errors import to_failure

        rps, burst = self.limits()
        retry = RetryPolicy(
            max_retries=self.max_retries,
            backoff_base=self.backoff_seconds,
            backoff_max=self.backoff_max_seconds,
        )
        try:
            return Bitrix24Client(
                url,
                requests_per_second=rps,
                burst=burst,
                api_version=self.api_version,
                timeout=(self.connect_timeout, self.read_timeout),
                max_retries=self.max_retries,
                operating_limit=self.operating_limit_seconds,
                request_time_limit=self.request_time_limit_seconds,
                share_limits=self.share_limits,
                retry=retry,
            )
        except Exception as exc:  # a malformed URL: say which variable, never the URL
            raise to_failure(
                exc, f"Invalid Bitrix24 webhook URL in {self.webhook_variable(portal)}"
            ) from None
