"""The layer's imports run one way, as its folders say: the handlers and wallet_lambda use the
package's root and its ledger vocabulary (devtools its storage too); `service.py` the use cases; a
use case storage and the ledger; storage the ledger; the ledger nothing of the others. Written as
data, checked on every file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "wallet" / "wallet_service"
# What each part may import of wallet_service (besides its own part).
MAY_IMPORT = {
    "ledger": set(),
    "storage": {"ledger"},
    "use_cases": {"ledger", "storage"},
    "service": {"ledger", "storage", "use_cases"},
    "root": {"ledger", "storage", "use_cases", "service"},  # wallet_service/__init__.py: what it exports
    "handlers": {"root", "ledger"},  # wallet_lambda and the functions
    "devtools": {"root", "ledger", "storage"},  # the tools also read where things live (documents, routing)
}
PARTS = ("ledger", "storage", "use_cases")


def part_of(module: str) -> str:
    """The part a dotted module of wallet_service is in: `wallet_service.storage.queries` -> storage."""
    names = module.split(".")[1:]
    if not names:
        return "root"
    return names[0] if names[0] in PARTS else "service" if names[0] == "service" else "root"


def imported(path: Path, module: str) -> set[str]:
    """The wallet_service modules a file imports, absolute (relative imports resolved from `module`)."""
    found = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            found.update(f"{base}.{alias.name}" if not node.module else base for alias in node.names)
    return {name for name in found if name == "wallet_service" or name.startswith("wallet_service.")}


def modules() -> list[tuple[Path, str, str]]:
    """(file, dotted module, part) for every file of the layer and its users."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        dotted = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        dotted = dotted.removesuffix(".__init__")
        found.append((path, dotted, part_of(dotted)))
    for folder, part in (
        (ROOT / "layers" / "wallet" / "wallet_lambda", "handlers"),
        (ROOT / "functions", "handlers"),
        (ROOT / "devtools", "devtools"),
    ):
        found.extend((path, path.stem, part) for path in sorted(folder.rglob("*.py")))
    return found


def test_every_module_is_in_a_part():
    loose = [dotted for _, dotted, part in modules() if part == "root" and dotted != "wallet_service"]
    assert loose == []  # a new module goes in ledger/, storage/ or use_cases/


@pytest.mark.parametrize(("path", "dotted", "part"), modules(), ids=lambda value: str(value).split("/")[-1])
def test_imports_run_one_way(path, dotted, part):
    crossing = {
        name for name in imported(path, dotted) if part_of(name) != part and part_of(name) not in MAY_IMPORT[part]
    }
    assert crossing == set(), f"{part} may import only {sorted(MAY_IMPORT[part])} of wallet_service"


def test_the_check_sees_a_crossing():
    """The resolver the test relies on: a storage module importing a use case is seen as one."""
    source = PACKAGE / "storage" / "queries.py"
    assert "wallet_service.ledger.limits" in imported(source, "wallet_service.storage.queries")
    assert part_of("wallet_service.use_cases.movements") not in MAY_IMPORT["storage"]
