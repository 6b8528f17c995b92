"""Where a measurement was made: the machine and the commit, for the reports' headers."""

from __future__ import annotations

import os
import platform
import subprocess

from devtools.paths import ROOT


def machine() -> str:
    """'Linux-6.1.0-x86_64-with-glibc2.36, 2 CPUs, load average 1.2 at the start'."""
    load = f", load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    return f"{platform.platform()}, {os.cpu_count()} CPUs{load}"


def commit() -> str:
    """'a6acd3f', with ' + uncommitted changes' when the working tree differs from it."""

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        return head + (" + uncommitted changes" if git("status", "--porcelain") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
