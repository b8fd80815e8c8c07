"""The wheel and sdist: built without a warning, with an SPDX license, and carrying every file
of the package (the Component's and the emulator's modules, py.typed, the demo's data)."""

from __future__ import annotations

import re
import tarfile
import zipfile

from tests.package.conftest import PACKAGE_FILES, Dist, package_files


def test_build_prints_no_warning(dist: Dist) -> None:
    # setuptools said "`project.license` as a TOML table is deprecated" before (issue 24).
    warnings = [line for line in dist.output.splitlines() if re.search(r"warn|deprecat", line, re.I)]
    assert warnings == []
    assert "Successfully built" in dist.output


def test_wheel_carries_every_package_file_and_the_metadata(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = wheel.read(metadata).decode()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entries = wheel.read(entry_points).decode()
    missing = [name for name in package_files() if name not in names]
    assert missing == []
    assert {"b24_dagster/py.typed", "b24_dagster/components/_bitrix24.py",
            "b24_dagster/emulator/__main__.py", "b24_dagster/demo/data/leads.csv"} <= names  # fmt: skip
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    headers = meta.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers and "License-File: LICENSE" in headers
    assert not any(h.startswith("License:") for h in headers)  # the deprecated free-text field
    assert {f"Provides-Extra: {extra}" for extra in ("ui", "dbt", "tls")} <= set(headers)
    # `dg` finds the Component type, pytest the emulator fixtures.
    assert "[dagster_dg_cli.registry_modules]\nb24_dagster = b24_dagster.components" in entries
    assert "[pytest11]\nb24_emulator = b24_dagster.emulator.pytest_plugin" in entries


def test_sdist_carries_the_sources_the_wheel_is_built_from(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert set(PACKAGE_FILES) <= names
    assert [name for name in package_files() if name not in names] == []
