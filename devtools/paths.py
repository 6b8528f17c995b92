"""The repository's places, named once for devtools, benchmarks and tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"  # one folder per Lambda function, each an app.py
LAYER = ROOT / "layers" / "wallet"  # the shared layer: wallet_service and wallet_lambda
EVENTS = ROOT / "events"  # sample events, one per function
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"  # the stacks sam deploy makes
OPENAPI = ROOT / "openapi.json"
LOCAL = ROOT / ".local"  # what local runs leave behind: the database, keys, logs, screenshots
SAM_BUILD = ROOT / ".aws-sam" / "build"
