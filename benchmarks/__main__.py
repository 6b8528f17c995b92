"""`python -m benchmarks`: put the service layer and the repository root on sys.path, then run."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run() -> int:
    # pytest's `pythonpath` setting does not apply here, so do what it does.
    for path in (ROOT, ROOT / "layers" / "wallet_core"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from benchmarks.suite import main  # imported only once the paths above are in place

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_run())
