"""pandas DataFrames to Bitrix24 commands, and results back (the only module that knows pandas).

Build a command set from a DataFrame, run it with ``Bitrix24Client.batch_by_chunk``, and
join the outcome back to the source rows::

    from b24_dagster.frames import commands_from_frame, failed_rows

    commands = commands_from_frame(leads, "crm.lead.add", key_column="source_id",
                                   fields={"title": "TITLE", "phone": "PHONE"})
    run = client.batch_by_chunk(commands.calls, halt_on_error=False)
    results = commands.with_results(run.to_arrow())
    bad = failed_rows(results, leads, "source_id")

Every row is checked before anything is sent (:class:`CommandValidationError` names the row
and the column). A million rows take seconds; ``block_rows=`` builds the commands lazily, a
block at a time, when memory matters more than a second conversion pass.
"""

from __future__ import annotations

from b24_dagster.frames._commands import CommandSet, commands_from_frame
from b24_dagster.frames._results import (
    FAILED_STATUSES,
    STATUSES,
    failed_rows,
    results_to_frame,
    table_to_frame,
)
from b24_dagster.frames._values import MULTIFIELD_NAMES, CommandValidationError

__all__ = [
    "FAILED_STATUSES",
    "MULTIFIELD_NAMES",
    "STATUSES",
    "CommandSet",
    "CommandValidationError",
    "commands_from_frame",
    "failed_rows",
    "results_to_frame",
    "table_to_frame",
]
