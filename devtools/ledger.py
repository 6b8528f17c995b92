"""`make audit` and `make migrate`: the ledger jobs against `make run`'s database.

The database is MONGODB_URI when set, else the embedded one on .local/db (the running `make run`'s
server when there is one); the database name is MONGODB_DATABASE (wallet). `audit` prints what it
checked and every discrepancy, and exits 1 when there is one; `migrate` brings a single-entry
ledger over to double entry and prints what it added (running it again adds nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pymongo import MongoClient

from devtools.embedded_mongo import local_database
from wallet_service import WalletService


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=("audit", "migrate"))
    job = parser.parse_args().job
    cleanup: list = []
    try:
        uri, description = local_database(cleanup)
        name = os.environ.get("MONGODB_DATABASE", "wallet")
        print(f"{job}: database {name!r} on {description}", file=sys.stderr)
        with MongoClient(uri) as client:
            service = WalletService(client[name], time_budget=30.0)
            service.ensure_indexes()
            if job == "migrate":
                print(json.dumps(service.migrate_ledger().model_dump(mode="json", by_alias=True), indent=2))
                return
            report = service.audit_ledger()
        print(json.dumps(report.model_dump(mode="json", by_alias=True), indent=2))
        if report.discrepancies:
            sys.exit(1)
    finally:
        for stop in reversed(cleanup):
            stop()


if __name__ == "__main__":
    main()
