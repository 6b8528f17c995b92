"""`python -m benchmarks`: the benchmark run (benchmarks/suite.py).

`python -m benchmarks profile OPERATION` profiles one operation instead (benchmarks/profiling.py)."""

from __future__ import annotations

import sys


def _run() -> int:
    if sys.argv[1:2] == ["profile"]:
        from benchmarks.profiling import main as profile

        return profile(sys.argv[2:])
    from benchmarks.suite import main

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_run())
