"""docs/api.md's library example runs as written, and leaves the wallet it says."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ledger_checks import assert_ledger_consistent

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def library_example() -> str:
    section = API_DOC.read_text().split("## The library API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_library_example_runs_as_written(service_database, database):
    code = library_example()
    assert "MongoClient(uri).wallet" in code  # the one thing replaced: this test's database
    names: dict = {}
    exec(
        compile(code.replace("MongoClient(uri).wallet", "database"), str(API_DOC), "exec"),
        {"database": service_database},
        names,
    )
    wallet = names["service"].get_wallet(names["wallet"].id)
    # 5,000 opened + 2,000 deposited; 1,900 held and 1,700 captured in two parts, the other 200 released.
    assert (wallet.balance, wallet.held, wallet.available) == (5_300, 0, 5_300)
    entries = names["service"].list_transactions(wallet.id).items
    assert {entry.reference_id for entry in entries} >= {"ch_1", "r-9"}
    assert_ledger_consistent(database)
