"""nbval runs each notebook cell as one test: a cell that asks the bundled local models dozens of times can
take minutes on a loaded machine (the project's 60 s test timeout is for unit tests), so cells get 300 s."""

from __future__ import annotations

import pytest

CELL_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.timeout(CELL_TIMEOUT_S))
