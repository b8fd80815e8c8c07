"""The chart of a benchmark (matplotlib, Agg backend): one panel per scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._scenarios import Scenario

__all__ = ["write_chart"]

#: The headline metric of each task.
_HEADLINE = {"writes": ("wall_s", "wall time, s"), "export": ("wall_s", "wall time, s"),
             "pipeline": ("wall_s", "wall time, s"), "sync": ("wall_s", "three runs, wall s")}
_CPU = {"writes": ("cpu_us_per_command", "client CPU, µs/command"),
        "export": ("cpu_us_per_row", "client CPU, µs/row"), "pipeline": ("cpu_s", "CPU, s"),
        "sync": ("r2_wall_s", "run 2 (1% changed) wall, s")}


def write_chart(path: Path, scenarios: list[Scenario], results: dict[str, dict[str, Any]],
                title: str) -> None:
    """Bars of the median (whiskers min–max): wall time and client CPU per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(scenarios))
    fig, axes = plt.subplots(rows, 2, figsize=(11, 2.6 * rows + 0.6), squeeze=False)
    for row, s in enumerate(scenarios):
        agg = results.get(s.key, {})
        for col, (metric, label) in enumerate((_HEADLINE[s.task], _CPU[s.task])):
            ax = axes[row][col]
            names, med, lo, hi = [], [], [], []
            for client in s.clients:
                stat = agg.get(client, {}).get(metric)
                names.append(client)
                if stat is None:
                    med.append(0.0)
                    lo.append(0.0)
                    hi.append(0.0)
                else:
                    med.append(stat["median"])
                    lo.append(stat["median"] - stat["min"])
                    hi.append(stat["max"] - stat["median"])
            colors = ["#2b7bba" if n.startswith("b24-dagster") else "#9a9a9a" for n in names]
            ax.barh(names, med, xerr=[lo, hi], color=colors, capsize=3)
            ax.invert_yaxis()
            ax.set_xlabel(label, fontsize=8)
            ax.tick_params(labelsize=8)
            if col == 0:
                ax.set_title(f"{s.key}. {s.title}", fontsize=9, loc="left")
            for y, (n, v) in enumerate(zip(names, med, strict=True)):
                damage = _damage(agg.get(n, {}))
                if agg.get(n, {}).get(metric) is None:
                    word = " failed" if agg.get(n, {}).get("_errors") else " not run"
                    ax.text(0, y, word + damage, va="center", fontsize=7)
                else:
                    # a fast bar that lost or doubled records is no win: say so beside it
                    ax.text(v, y, f" {v:.3g}{damage}", va="center", fontsize=7,
                            color="#b00020" if damage else "black")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _damage(stats: dict[str, Any]) -> str:
    """`` (3,000 lost)`` when the client's runs lost or duplicated records (medians)."""
    parts = [f"{round(stats[k]['median']):,} {k}" for k in ("lost", "duplicated")
             if isinstance(stats.get(k), dict) and stats[k].get("median")]
    return f" ({', '.join(parts)})" if parts else ""
