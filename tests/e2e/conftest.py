"""The order of the end-to-end modules.

`make test` runs this group beside the SAM tests (Makefile), which keep this 2-core machine busy for
their first two minutes or so. The modules that load it little and time nothing go first, beside
them; the workloads that fault the database under load and time its answers (the bank workloads, the
outages) go last, to run as they do alone: beside the SAM tests, the bank workload through faults
took up to 2.5 times as long.
"""

from __future__ import annotations

from pathlib import Path

import pytest

LAST = tuple(Path(__file__).parent / "workload" / name for name in ("test_bank_workload.py", "test_outages.py"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.path in LAST]
    if last:
        items[:] = [item for item in items if item.path not in LAST] + last
