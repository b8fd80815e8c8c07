"""The machine a benchmark ran on: CPU model, cores, RAM, Python, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["machine_info"]

_LIBRARIES = ("b24-dagster", "fast_bitrix24", "b24pysdk", "dagster", "requests", "aiohttp",
              "pyarrow", "pandas")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, object]:
    """What to print beside the figures."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": None if (ram := _ram_gib()) is None else round(ram, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": None if load is None else [round(x, 2) for x in load],
        "versions": versions,
    }
