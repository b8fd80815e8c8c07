"""`import b24_dagster` and its client part must not pull in dagster, dbt, pandas or pyarrow."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_package_import_pulls_in_no_framework() -> None:
    loaded = _modules_after("import b24_dagster")
    assert not {"dagster", "pandas", "dbt"} & {m.split(".")[0] for m in loaded}


def test_package_import_pulls_in_no_pyarrow() -> None:
    # pyarrow is loaded when a result is first converted to Arrow, not on import.
    loaded = _modules_after("import b24_dagster; from b24_dagster import Bitrix24Client")
    assert "pyarrow" not in {m.split(".")[0] for m in loaded}


def test_client_import_pulls_in_no_framework() -> None:
    loaded = _modules_after("from b24_dagster.client import Bitrix24Client")
    assert not {"dagster", "pandas", "dbt", "pyarrow"} & {m.split(".")[0] for m in loaded}
