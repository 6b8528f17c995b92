"""`make audit` and `make migrate` (devtools/ledger.py) against a database of the suite's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bson import Int64, ObjectId

from devtools.paths import ROOT
from tests.ledger_checks import NOTHING_TO_MIGRATE
from wallet_service import WalletService
from wallet_service.storage.documents import WALLETS


def run_job(job: str, uri: str, name: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MONGODB_URI": uri, "MONGODB_DATABASE": name}
    return subprocess.run(
        [sys.executable, "-m", "devtools.ledger", job],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_audit_and_make_migrate(mongo_uri, database):
    service = WalletService(database)
    service.ensure_indexes()
    wallet = service.create_wallet("alice", "USD", opening_balance=500).wallet.id
    migrated = run_job("migrate", mongo_uri, database.name)
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout) == NOTHING_TO_MIGRATE
    clean = run_job("audit", mongo_uri, database.name)
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert (report["wallets"], report["discrepancies"]) == (1, [])
    database[WALLETS].update_one({"_id": ObjectId(wallet)}, {"$set": {"balance": Int64(501)}})
    found = run_job("audit", mongo_uri, database.name)
    assert found.returncode == 1
    (discrepancy,) = json.loads(found.stdout)["discrepancies"]
    assert (discrepancy["kind"], discrepancy["subject"]) == ("wallet_mismatch", wallet)
