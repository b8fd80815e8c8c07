"""Shared test configuration: the emulator fixtures come from b24_dagster.emulator.pytest_plugin."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
