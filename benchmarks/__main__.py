"""`python -m benchmarks`: the benchmark run (benchmarks/suite.py).

`python -m benchmarks profile OPERATION` profiles one operation instead (benchmarks/profiling.py);
`python -m benchmarks scale [--wallets N --documents N]` measures only the operations near-empty
and on a grown database (benchmarks/scale.py); `python -m benchmarks transactions [--wallets N
--documents N]` only the jobs' transaction lengths on a grown database (benchmarks/transaction_lengths.py)."""

from __future__ import annotations

import sys


def _run() -> int:
    if sys.argv[1:2] == ["profile"]:
        from benchmarks.profiling import main as profile

        return profile(sys.argv[2:])
    if sys.argv[1:2] == ["scale"]:
        from benchmarks.scale import main as scale

        return scale(sys.argv[2:])
    if sys.argv[1:2] == ["transactions"]:
        from benchmarks.transaction_lengths import main as transactions

        return transactions(sys.argv[2:])
    from benchmarks.suite import main

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_run())
