"""samconfig.toml's stacks, as `sam deploy` reads them."""

from __future__ import annotations

import tomllib

from devtools.paths import SAMCONFIG


def parameter_overrides() -> dict[str, dict[str, str]]:
    """Each samconfig.toml environment's parameter_overrides ([default] is the dev stack)."""
    environments = tomllib.loads(SAMCONFIG.read_text())
    return {
        name: dict(override.split("=", 1) for override in environment["global"]["parameters"]["parameter_overrides"])
        for name, environment in environments.items()
        if isinstance(environment, dict) and "global" in environment
    }
