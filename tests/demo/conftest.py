"""Fixtures of the demo tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An isolated Dagster home and base location for in-process tests; returns the home."""
    home = tmp_path / "home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith(("BITRIX24_", "B24_DAGSTER_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("B24_DAGSTER_BASE", str(tmp_path / "data"))
    return home
