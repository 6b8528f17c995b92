"""Benchmarks of the wallet service, all in one run against one server (`make bench`).

Run with `make bench` (or `.venv/bin/python -m benchmarks` from the repository root). Uses
MONGODB_URI when set, else the embedded SecantusDB started for the run. Prints one Markdown report:
round trips per operation (the exit status is 1 when one is over its budget), ops/s on one thread
beside two floors measured with bare pymongo, ops/s on 1..8 threads with the database's write
conflicts counted, journal pages with their plans, and expiry. Nothing here asserts a timing.
"""
