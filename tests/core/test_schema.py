"""Result rows and attempt records are declared once, in `opencode_lab.core.schema`."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from opencode_lab.core.schema import ATTEMPT_COLUMNS, RESULT_COLUMNS, RESULT_SCHEMA, attempts_frame, results_frame
from opencode_lab.session.runlog import RunLog

PACKAGE = Path(__file__).resolve().parents[2] / "opencode_lab"
COLUMNS = set(RESULT_COLUMNS) | set(ATTEMPT_COLUMNS)


def test_an_empty_frame_has_every_column_with_its_declared_type() -> None:
    frame = results_frame([])
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert frame["cached"].dtype == bool and frame["latency_s"].dtype == "float64"
    assert list(attempts_frame([]).columns) == list(ATTEMPT_COLUMNS)


def test_unknown_numbers_are_missing_not_zero() -> None:
    frame = results_frame([{"prompt": "p", "input_tokens": None, "cost_usd": None}])
    assert frame["input_tokens"].dtype == "Int64" and frame["input_tokens"].isna().all()
    assert pd.isna(frame["cost_usd"][0])


def test_user_facing_columns_come_first_and_identifiers_last() -> None:
    assert RESULT_COLUMNS[:4] == ("prompt", "model", "response", "error_type")
    assert RESULT_COLUMNS[-2:] == ("prompt_id", "run_id")


def test_the_run_log_tables_are_derived_from_the_schema(tmp_path: Path) -> None:
    RunLog(tmp_path / "runs.sqlite").close()
    with sqlite3.connect(tmp_path / "runs.sqlite") as con:
        results = {r[1]: r[2] for r in con.execute("PRAGMA table_info(results)")}
        attempts = [r[1] for r in con.execute("PRAGMA table_info(attempts)")]
    assert {c.name: c.sql.partition(" ")[2] for c in RESULT_SCHEMA}.items() <= results.items()
    assert set(ATTEMPT_COLUMNS) <= set(attempts)


@pytest.mark.slow
def test_no_other_module_spells_out_a_list_of_columns() -> None:
    """A literal list of four or more column names outside the schema is a second declaration waiting to drift."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List | ast.Tuple | ast.Set):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len(names) >= 4 and len(names) == len(node.elts) and set(names) <= COLUMNS:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
