"""The layout keeps its promises: only the run driver and the executors know about executors."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "clipfactory"
IMPORT = re.compile(r"^\s*(from\s+(\.+|clipfactory\.)\S*executors\b|import\s+clipfactory\.executors\b)", re.M)


def test_no_module_outside_pipelines_and_executors_imports_an_executor():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        if rel[0] in ("pipelines", "executors"):
            continue
        if IMPORT.search(path.read_text()):
            offenders.append("/".join(rel))
    assert offenders == []


def test_the_pattern_finds_executor_imports():
    assert IMPORT.search("    from ..executors.local import LocalExecutor\n")
    assert IMPORT.search("from clipfactory.executors import get_executor\n")
    assert not IMPORT.search("from ..pipelines import Run\n")


def test_runs_and_outcome_rows_are_written_in_one_module():
    writers = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if re.search(r"INSERT INTO (runs|stage_outcomes)\b", text):
            writers.append("/".join(path.relative_to(SRC).parts))
    assert writers == ["catalog/outcomes.py"]


START = re.compile(r"\b(start_run|new_run_id)\s*\(")


def test_only_the_run_driver_and_executors_start_runs():
    # catalog/outcomes.py defines them; pipelines.Run (through its executor) is the one caller
    callers, sanctioned = [], set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        found = START.search(path.read_text())
        if rel[0] in ("pipelines", "executors") or rel == ("catalog", "outcomes.py"):
            if found:
                sanctioned.add("/".join(rel))
            continue
        if found:
            callers.append("/".join(rel))
    assert callers == []
    # the scan reads the real modules: the definitions and the run driver's calls are found where they are
    assert {"catalog/outcomes.py", "pipelines/__init__.py", "executors/local.py"} <= sanctioned
    assert START.search("run_id = outcomes.start_run(con, 'dedup', 'local')")
