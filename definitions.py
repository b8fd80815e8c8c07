"""The demo pipeline: Bitrix24 -> Parquet -> dbt -> Bitrix24, against a local emulator.

`workspace.yaml` loads this file (`dagster dev -w workspace.yaml`), and so does
`dagster asset materialize -f definitions.py --select '*'`. Without `BITRIX24_WEBHOOK_URL`
in the environment, loading it makes sure one local Bitrix24 emulator runs for the Dagster
home and points the resource at it (see `b24_dagster/demo/_local_portal.py`). `dg` loads the
same definitions through `b24_dagster.demo.definitions` (pyproject.toml, `[tool.dg]`).
"""

from b24_dagster.demo.definitions import defs

__all__ = ["defs"]
