"""Import a Lambda function's handler file. Every one is called app.py, so each import needs a
module name of its own; a fresh module object is returned each call."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_handler_module(code_dir: Path, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, code_dir / "app.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {code_dir / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
