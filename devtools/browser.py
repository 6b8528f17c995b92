"""A real browser for the tests: Debian's Chromium, driven by Playwright for Python.

Playwright's own browser download cannot reach its host here, so Playwright drives the system's
Chromium (`/usr/bin/chromium`). When it is missing, it is installed with apt-get (as root), as
`devtools/sam_local.py` installs Docker. The flags keep a headless Chromium off the network it
would otherwise try to reach at start (updates, sync, field trials): the pages it opens are ours.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devtools import debian

CHROMIUM = Path("/usr/bin/chromium")
# Elsewhere (a laptop, GitHub's Ubuntu runners) another build of Chromium may be on PATH.
OTHER_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container has no user namespace for Chromium's sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserUnavailable(RuntimeError):
    pass


def ensure_chromium() -> Path:
    """The system Chromium, installed from Debian's packages when missing (needs root)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    for name in OTHER_NAMES:
        if found := shutil.which(name):
            return Path(found)
    if os.geteuid() != 0:
        raise BrowserUnavailable("Chromium is not installed: run `sudo apt-get install chromium` (Debian's package)")
    failure = debian.install("chromium")
    if failure is not None:
        raise BrowserUnavailable(failure)
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserUnavailable(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


def launch(playwright):
    """A headless Chromium under Playwright's control (`playwright.chromium.launch`)."""
    return playwright.chromium.launch(executable_path=str(ensure_chromium()), args=list(FLAGS))
