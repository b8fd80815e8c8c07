"""The benchmark command end to end at tiny sizes: it runs every scenario for every client
and writes the Markdown table (a row per client), the chart and the raw JSON.

Behaviour only: no figure is checked (the machine is shared; timings say nothing here).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

CLIENTS = ("b24-dagster", "fast_bitrix24", "b24pysdk")


def _table_rows(markdown: str, section: str) -> list[str]:
    """The client names in the table of the section whose heading starts with ``section``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"### {section}. "))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("### "):
            break
        if line.startswith("| ") and not line.startswith("| client"):
            rows.append(line.split("|")[1].strip())
    return rows


def test_quick_bench_writes_table_chart_and_json(tmp_path: Path) -> None:
    # The chart needs the bench extra (`python3 dev.py bench` installs it); without it (the
    # test install, CI) everything else is checked, and the run says it drew no chart.
    charted = importlib.util.find_spec("matplotlib") is not None
    pytest.importorskip("fast_bitrix24")
    pytest.importorskip("b24pysdk")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "b24_dagster.bench", "--quick", "--repeat", "1", "--out", str(out),
         "--writes", "300", "--faults", "300", "--cost", "200", "--export", "3000",
         "--export-small", "300", "--pipeline", "100", "--sync", "300", "--no-jssdk"],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    markdown = (out / "latest.md").read_text(encoding="utf-8")
    for section in ("1", "2", "3", "3-small", "5"):
        assert _table_rows(markdown, section) == list(CLIENTS), section
    assert _table_rows(markdown, "4") == ["b24-dagster", "b24-dagster+dagster"]
    assert _table_rows(markdown, "6") == ["b24-dagster sync", "b24-dagster sync (checked)", "fast_bitrix24"]
    assert "Theoretical minimum: (requests − burst) / rate" in markdown
    assert "Machine:" in markdown and "fast_bitrix24 1." in markdown
    assert "JS SDK: not run: --no-jssdk" in markdown

    if charted:
        png = (out / "latest.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    else:
        assert not (out / "latest.png").exists()
        assert "no chart: matplotlib is not installed" in proc.stdout + proc.stderr

    data = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    runs = data["runs"]
    assert {(r["scenario"], r["client"]) for r in runs} >= {("1", c) for c in CLIENTS}
    ours = [r for r in runs if r["client"] == "b24-dagster" and r["scenario"] in ("1", "2")]
    assert ours and all(r["error"] is None for r in ours)
    # the emulator counted what our client created: every command once
    assert all(r["metrics"]["created"] == r["metrics"]["ok"] for r in ours)
    assert all(r["metrics"]["duplicated"] == 0 and r["metrics"]["lost"] == 0 for r in ours)


def test_scenario_selection_and_bad_arguments(tmp_path: Path) -> None:
    bad = subprocess.run([sys.executable, "-m", "b24_dagster.bench", "--scenario", "10"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "scenarios 1-9" in bad.stderr


def test_sync_scenario_short_form(tmp_path: Path) -> None:
    """Scenario 6 at 400 rows, this project's two clients only (CI runs this short form)."""
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "b24_dagster.bench", "--scenario", "6", "--sync", "400", "--repeat", "1",
         "--clients", "b24-dagster sync,b24-dagster sync (checked)", "--out", str(out), "--no-jssdk"],
        capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = json.loads((out / "latest.json").read_text(encoding="utf-8"))["runs"]
    assert {r["client"] for r in runs} == {"b24-dagster sync", "b24-dagster sync (checked)"}
    for r in runs:
        m = r["metrics"]
        assert r["error"] is None and (m["created"], m["duplicated"], m["lost"]) == (400, 0, 0)
        assert (m["r1_writes"], m["r2_writes"], m["r3_writes"]) == (400, 4, 0)


def test_bulk_and_budget_scenarios_short_form(tmp_path: Path) -> None:
    """Scenarios 7-9 (issue 14) at 2,000 / 3,000 / 500 creates, this project's clients only:
    bulk import needs 1,000 creates a request, and every create lands once, none refused or
    blocked (the budget binds only at full size: `python3 dev.py bench --scenario 9`)."""
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "b24_dagster.bench", "--scenario", "7,8,9", "--bulk", "2000", "--bulk-large", "3000",
         "--heavy", "500", "--repeat", "1", "--clients", "b24-dagster,b24-dagster bulk", "--out", str(out),
         "--no-jssdk"],
        capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = json.loads((out / "latest.json").read_text(encoding="utf-8"))["runs"]
    assert {(r["scenario"], r["client"]) for r in runs} == {
        ("7", "b24-dagster"), ("7", "b24-dagster bulk"), ("8", "b24-dagster bulk"), ("9", "b24-dagster")}
    n = {"7": 2000, "8": 3000, "9": 500}
    for r in runs:
        m = r["metrics"]
        assert r["error"] is None and (m["created"], m["duplicated"], m["lost"]) == (n[r["scenario"]], 0, 0)
        assert m["refused"] == 0 and m["blocked"] == 0
        bulk = r["client"] == "b24-dagster bulk"
        assert m["requests"] == -(-n[r["scenario"]] // (1000 if bulk else 50))
    markdown = (out / "latest.md").read_text(encoding="utf-8")
    assert "Theoretical minimum (bulk import)" in markdown and "× budget min" in markdown
