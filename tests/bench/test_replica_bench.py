"""The replica benchmark (`python -m b24_dagster.bench.replica`): small in the default suite
(behaviour: every change and deletion found, the figures reported), 1,000,000 deals with the
issue's goal under `-m slow`."""

from __future__ import annotations

import json

import pytest

from b24_dagster.bench.replica import GOAL_REQUESTS, main, markdown, run_benchmark


def test_the_benchmark_finds_every_change_and_deletion(tmp_path) -> None:
    result = run_benchmark(6_000, 0.01, 12, workdir=tmp_path)
    assert result["verified"]["ok"], result["verified"]
    inc = result["replica_incremental_run"]
    assert inc["new_deletions"] == 12 and inc["rows_read"] == 60
    assert inc["requests"] == sum(inc["requests_by_step"].values()) < result["full_export"]["requests"] + 5
    assert "| replica, incremental run |" in markdown(result)


def test_the_command_writes_its_figures(tmp_path, capsys) -> None:
    out = tmp_path / "replica.json"
    assert main(["--deals", "3000", "--deleted", "3", "--deletions", "sweep", "--out", str(out)]) == 0
    assert "| full export | 2 |" in capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures["replica_incremental_run"]["deletion_check"] == "sweep" and figures["verified"]["ok"]


@pytest.mark.slow
def test_a_million_deals_one_percent_changed_and_a_hundred_deleted(tmp_path) -> None:
    result = run_benchmark(1_000_000, 0.01, 100, workdir=tmp_path)
    assert result["verified"]["ok"]
    assert result["full_export"]["requests"] == 401
    assert result["replica_incremental_run"]["requests"] <= GOAL_REQUESTS
