"""Debian packages the tools install when they are missing (as root), one apt-get at a time.

`make test` runs its e2e and SAM groups side by side, and on a fresh machine both install what they
lack at the start (Chromium; docker.io, debootstrap): apt-get refuses a second install while one
runs ("Could not get lock /var/lib/dpkg/lock-frontend"). So an install here first holds a lock of
ours, and apt-get waits for dpkg's lock rather than fail when anyone else holds it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "wallet-apt-get.lock"
DPKG_LOCK_SECONDS = 600


def install(*packages: str, recommends: bool = False) -> str | None:
    """apt-get update, then install `packages`; None when done, else what failed."""
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", f"DPkg::Lock::Timeout={DPKG_LOCK_SECONDS}"]
    install = ["apt-get", *wait, "install", "-y", "-qq", *([] if recommends else ["--no-install-recommends"])]
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for command in (["apt-get", *wait, "update", "-qq"], [*install, *packages]):
            result = subprocess.run(command, capture_output=True, text=True, env=environment)
            if result.returncode != 0:
                return f"{' '.join(command)} failed: {result.stderr.strip()[-800:]}"
    return None
