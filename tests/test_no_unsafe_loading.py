"""Nothing the package reads is unpickled or evaluated: no pickle, marshal, shelve or
unsafe YAML anywhere, and `exec` only where the emulator generates code from its own
static field tables (never from a request)."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "b24_dagster"
FORBIDDEN = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|marshal|shelve|dill|cloudpickle)\b"
                       r"|\byaml\.(load|unsafe_load)\(|\beval\(", re.M)  # fmt: skip
EXEC_ALLOWED = {"emulator/_entities.py"}


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50  # the scan sees the package
    return files


def test_no_unpickling_or_eval_in_the_package() -> None:
    hits = [f"{p.relative_to(PACKAGE)}: {m.group(0).strip()}"
            for p in _sources() for m in FORBIDDEN.finditer(p.read_text())]  # fmt: skip
    assert hits == []


def test_exec_only_on_the_emulators_static_tables() -> None:
    users = {str(p.relative_to(PACKAGE)) for p in _sources() if re.search(r"(?<![.\w])exec\(", p.read_text())}
    assert users <= EXEC_ALLOWED
