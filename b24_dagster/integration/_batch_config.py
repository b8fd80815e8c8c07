"""The run configuration and the asset checks of a batch asset or op (shared by the factories
and `@bitrix24_batch_assets`)."""

# No `from __future__ import annotations`: Dagster reads the Config's annotations.

from typing import Any, Literal

import dagster as dg
from pydantic import Field

__all__ = ["FAILURE_RATE_CHECK", "SKIPPED_CHECK", "UNKNOWN_CHECK", "Bitrix24BatchConfig", "check_results",
           "check_run_config", "check_specs"]

FAILURE_RATE_CHECK = "failure_rate_below_threshold"
UNKNOWN_CHECK = "no_unknown_outcomes"
SKIPPED_CHECK = "no_skipped_rows"

class Bitrix24BatchConfig(dg.Config):
    """Run configuration of a batch asset or op (the launchpad shows these)."""

    mode: Literal["all", "redrive"] = Field(
        default="all",
        description=(
            "all: send every command and replace the results. redrive: send again only the "
            "commands whose latest status is error or not_run, and merge their new outcome."
        ),
    )
    include_unknown: bool = Field(
        default=False,
        description=(
            "In redrive mode, also send the unknown commands that could not be settled. Unknown "
            "creates that carry a key (ORIGIN_ID / originId / reconcile_field) are always looked "
            "up on the portal first; the rest may already have been applied: only for idempotent "
            "methods (updates) or after checking."
        ),
    )
    halt_on_error: bool | None = Field(
        default=None,
        description="Stop at the first failed command (default: the factory's, normally false).",
    )
    dry_run: bool = Field(
        default=False,
        description=(
            "Sync assets only: look the rows up and write the plan (create, update, unchanged, "
            "delete, ambiguous, ... per row) beside the results, and send no write; the results "
            "and the sync state stay as they were."
        ),
    )
    rebuild_state: bool = Field(
        default=False,
        description=(
            "Sync assets only: ignore the sync state (for a state that cannot be read, or is not "
            "trusted): every row is read from the portal by key and compared field by field, "
            "records already right get no write, and the state is written anew."
        ),
    )


def check_run_config(context: Any, label: str) -> None:
    """Refuse a run whose config names an op that is not in it: a `dry_run` given under the
    asset's name instead of its op's (`bitrix24__lead_import`) would otherwise be a real run.
    Dagster refuses such config on most routes; this holds on all of them, before any request."""
    run_config = getattr(getattr(context, "run", None), "run_config", None) or {}
    ops = run_config.get("ops") or {}
    nodes = {node.name for node in context.job_def.graph.nodes}
    unknown = sorted(name for name in ops if name not in nodes)
    if unknown:
        raise dg.Failure(
            f"{label}: the run config names ops that are not in this run: {', '.join(unknown)} (the ops of this "
            f"run: {', '.join(sorted(nodes))}; a batch asset's op is named after its key, e.g. "
            f"{context.op.name}). Nothing was sent: a dry_run meant for one of them would have been ignored.",
            allow_retries=False)  # fmt: skip


def check_specs(key: dg.AssetKey, threshold: float, block_on_unknown: bool = False,
                *, sync: bool = False) -> list[dg.AssetCheckSpec]:  # fmt: skip
    """The checks of a batch asset (`no_unknown_outcomes` blocking on request; a sync adds
    `no_skipped_rows`)."""
    skipped = [dg.AssetCheckSpec(
        SKIPPED_CHECK, asset=key,
        description="No row is skipped: a row that failed max_attempts times with the same fields is not sent "
                    "again until its source row changes.",
    )] if sync else []  # fmt: skip
    return skipped + [
        dg.AssetCheckSpec(
            FAILURE_RATE_CHECK,
            asset=key,
            description=f"At most {threshold:.1%} of the commands failed (error, not_run, unknown).",
        ),
        dg.AssetCheckSpec(
            UNKNOWN_CHECK,
            asset=key,
            description="No command has an unknown outcome (sent, but its answer was lost)."
            + (" Blocking: downstream assets of the run do not run when it fails." if block_on_unknown else ""),
            blocking=block_on_unknown,
        ),
    ]


def check_results(key: dg.AssetKey, metadata: dict[str, Any], threshold: float) -> list[dg.AssetCheckResult]:
    """The results of the checks from a step's metadata (`no_skipped_rows` for a sync's)."""
    failure_rate = float(getattr(metadata["failure_rate"], "value", metadata["failure_rate"]))
    unknown, commands = int(metadata["unknown"]), int(metadata["commands"])
    skipped = []
    if "rows_skipped" in metadata:
        count = int(metadata["rows_skipped"])
        skipped.append(dg.AssetCheckResult(
            check_name=SKIPPED_CHECK, asset_key=key, passed=count == 0, severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows_skipped": count, "commands": commands},
            description=None if count == 0 else (
                f"{count} rows failed max_attempts times with the same fields and were not sent; their reasons are in "
                "the results' error_reason column. Fix the rows in the source (a changed row is tried again)."),
        ))  # fmt: skip
    return skipped + [
        dg.AssetCheckResult(
            check_name=FAILURE_RATE_CHECK,
            asset_key=key,
            passed=failure_rate <= threshold,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failure_rate": dg.MetadataValue.float(round(failure_rate, 6)),
                "threshold": dg.MetadataValue.float(threshold),
                "failed": round(failure_rate * commands),
                "commands": commands,
            },
        ),
        dg.AssetCheckResult(
            check_name=UNKNOWN_CHECK,
            asset_key=key,
            passed=unknown == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"unknown": unknown, "commands": commands},
            description=None
            if unknown == 0
            else (
                f"{unknown} commands may or may not have been applied by the portal and carry "
                "no key to look them up by: check them on the portal, then re-drive "
                "(include_unknown) only what is missing."
            ),
        ),
    ]
