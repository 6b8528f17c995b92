"""`python -m benchmarks`: put the service layer and the repository root on sys.path, then run.

`python -m benchmarks profile OPERATION` profiles one operation instead (benchmarks/profiling.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run() -> int:
    # pytest's `pythonpath` setting does not apply here, so do what it does.
    for path in (ROOT, ROOT / "layers" / "wallet_core"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    # Imported only once the paths above are in place.
    if sys.argv[1:2] == ["profile"]:
        from benchmarks.profiling import main as profile

        return profile(sys.argv[2:])
    from benchmarks.suite import main

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_run())
