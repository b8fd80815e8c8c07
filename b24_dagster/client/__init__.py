"""The Bitrix24 webhook client and the chunked-batch engine (no Dagster, no pandas)."""

from __future__ import annotations

from ._chunked import ChunkedBatchRun, ChunkProgress, RunStats
from ._client import Bitrix24Client, CallResult, ClientStats, is_write_method
from ._refs import ref, ref_array
from ._results import BatchResult, CommandResult
from ._retry import RetryPolicy
from ._transport import Envelope
from ._webhook import WebhookUrl

__all__ = [
    "BatchResult",
    "Bitrix24Client",
    "CallResult",
    "ChunkProgress",
    "ChunkedBatchRun",
    "ClientStats",
    "CommandResult",
    "Envelope",
    "RetryPolicy",
    "RunStats",
    "WebhookUrl",
    "is_write_method",
    "ref",
    "ref_array",
]
