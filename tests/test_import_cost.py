"""`import b24_dagster` and its client part must not pull in dagster, dbt or pandas."""

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
