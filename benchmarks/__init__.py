"""Benchmarks of the wallet service: round trips per operation and operations per second.

Run with `make bench` (or `.venv/bin/python -m benchmarks` from the repository root). Uses
MONGODB_URI when set, else the embedded mongoeco server started in-process. Prints a markdown
table for the README and exits non-zero when an operation needs more round trips than its budget.
Nothing here asserts on timings: ops/s are reported, never checked.
"""
