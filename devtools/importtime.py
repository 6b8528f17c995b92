"""Cold-start import time of every Lambda function's handler module (`make importtime`).

For each functions/<name>/app.py, `python -X importtime -c "import app"` runs in a fresh process
with only the function's folder and the layer (layers/wallet_core) on PYTHONPATH, as Lambda lays
them out (/var/task and /opt/python), and the variables Lambda sets, so that Powertools' Tracer
behaves as deployed (`Tracing: Active`: X-Ray's Lambda sampler and `patch_all`). One discarded
warm-up run (it writes the bytecode caches), then `--repeat` measured runs; the table shows the
median cumulative time of the top-level `app` import and the three heaviest dependencies: for
each package, the cumulative time of the imports our own code (app, wallet_api, wallet_core) made
of it, with everything those pulled in that was not loaded yet; disjoint, so they add up.

    python -m devtools.importtime [--repeat 5] [--function deposit ...] [--no-lambda-env] [--sam-build]

`--sam-build` measures what `make sam-build` produced instead (.aws-sam/build), with bytecode
writing off as on Lambda's read-only file system: what a deployed cold start pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
LAYER = ROOT / "layers" / "wallet_core"
SAM_BUILD = ROOT / ".aws-sam" / "build"
MODULE = "app"
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


# The function's own code: its module and the layer's packages. Everything else it imports is a dependency.
OWN_PACKAGES = {MODULE} | {path.parent.name for path in LAYER.glob("*/__init__.py")}


@dataclass
class Node:
    name: str
    self_us: int
    cumulative_us: int
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    cumulative_us: int  # the top-level `import app`, everything it pulled in included
    # Each dependency package, by the imports our own code made of it: their cumulative times
    # (each with what it pulled in). Python imports a module once, so these are disjoint.
    dependencies_us: dict[str, int]


def parse_tree(stderr: str) -> list[Node]:
    """The top-level imports of `-X importtime` output, as trees. Lines come in post-order (a module
    after everything it imported), indented two spaces per level."""
    pending: dict[int, list[Node]] = defaultdict(list)
    roots: list[Node] = []
    for line in stderr.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        depth = len(match[3]) // 2
        node = Node(match[4], int(match[1]), int(match[2]), pending.pop(depth + 1, []))
        (roots if depth == 0 else pending[depth]).append(node)
    return roots


def parse(stderr: str, module: str = MODULE) -> Sample:
    for root in parse_tree(stderr):
        if root.name == module:
            break
    else:
        raise ValueError(f"no top-level `import {module}` in the -X importtime output:\n{stderr[-2000:]}")
    dependencies: dict[str, int] = defaultdict(int)

    def walk(node: Node) -> None:
        for child in node.children:
            package = child.name.split(".")[0]
            if package in OWN_PACKAGES:
                walk(child)
            else:
                dependencies[package] += child.cumulative_us

    walk(root)
    return Sample(root.cumulative_us, dict(dependencies))


@dataclass(frozen=True)
class Layout:
    """Where a function's code and the layer are read from."""

    sam_build: bool = False  # .aws-sam/build (`make sam-build`) instead of the sources

    def function_dir(self, name: str) -> Path:
        if self.sam_build:  # SAM names the folder after the logical id: capture_reservation -> CaptureReservation
            return SAM_BUILD / "".join(part.capitalize() for part in name.split("_"))
        return FUNCTIONS / name

    @property
    def layer(self) -> Path:
        return SAM_BUILD / "WalletCoreLayer" / "python" if self.sam_build else LAYER


def environment(function_dir: Path, layer: Path, *, lambda_env: bool, write_bytecode: bool) -> dict[str, str]:
    """A clean environment: nothing from this shell's PYTHONPATH, nothing from tests/ or devtools/."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(function_dir), str(layer)]),
        "PYTHONNOUSERSITE": "1",
        "POWERTOOLS_SERVICE_NAME": "wallet",
        "POWERTOOLS_METRICS_NAMESPACE": "Wallet",
    }
    if not write_bytecode:  # Lambda's /var/task and /opt are read-only: no __pycache__ is ever written there
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if lambda_env:
        env.update(
            {
                "LAMBDA_TASK_ROOT": str(function_dir),
                "AWS_LAMBDA_FUNCTION_NAME": f"wallet-{function_dir.name}",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            }
        )
    return env


def measure_once(name: str, *, lambda_env: bool, layout: Layout = Layout()) -> Sample:
    function_dir = layout.function_dir(name)
    if not (function_dir / f"{MODULE}.py").is_file():
        raise FileNotFoundError(
            f"{function_dir / MODULE}.py does not exist" + (" (run `make sam-build`)" if layout.sam_build else "")
        )
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {MODULE}"],
        cwd=function_dir,  # `-c` puts the working directory first on sys.path: the function's folder
        env=environment(function_dir, layout.layer, lambda_env=lambda_env, write_bytecode=not layout.sam_build),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"importing functions/{name}/app.py failed:\n{completed.stderr[-3000:]}")
    return parse(completed.stderr)


@dataclass(frozen=True)
class Result:
    name: str
    median_ms: float
    heaviest: list[tuple[str, float]]  # (dependency package, median ms of importing it)


def measure(name: str, *, repeat: int, lambda_env: bool, layout: Layout = Layout()) -> Result:
    measure_once(name, lambda_env=lambda_env, layout=layout)  # warm-up: bytecode caches, file system cache
    samples = [measure_once(name, lambda_env=lambda_env, layout=layout) for _ in range(repeat)]
    packages = set().union(*(sample.dependencies_us for sample in samples))
    by_package = {
        package: statistics.median(sample.dependencies_us.get(package, 0) for sample in samples) / 1000
        for package in packages
    }
    heaviest = sorted(by_package.items(), key=lambda item: (-item[1], item[0]))[:3]
    return Result(name, statistics.median(sample.cumulative_us for sample in samples) / 1000, heaviest)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})"


def table(results: list[Result]) -> str:
    lines = [
        "| function | import ms | top 3 heaviest imports (ms, with what each pulled in) |",
        "| --- | ---: | --- |",
    ]
    for result in results:
        heaviest = ", ".join(f"{package} {ms:.0f}" for package, ms in result.heaviest)
        lines.append(f"| {result.name} | {result.median_ms:.0f} | {heaviest} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.importtime", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per function (default 5)")
    parser.add_argument("--function", action="append", help="only this function (repeatable)")
    parser.add_argument(
        "--no-lambda-env",
        dest="lambda_env",
        action="store_false",
        help="no Lambda variables (Tracer disabled, X-Ray's centralized sampler): a plain local process",
    )
    parser.add_argument(
        "--sam-build",
        action="store_true",
        help="import the functions and the layer as `make sam-build` left them in .aws-sam/build, writing no bytecode",
    )
    args = parser.parse_args(argv)

    layout = Layout(sam_build=args.sam_build)
    names = args.function or sorted(path.parent.name for path in FUNCTIONS.glob("*/app.py"))
    started = datetime.now(UTC)
    results = [measure(name, repeat=args.repeat, lambda_env=args.lambda_env, layout=layout) for name in names]
    print(
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}, Python {platform.python_version()}; "
        f"median of {args.repeat} fresh processes per function, "
        f"{'Lambda environment (tracing on)' if args.lambda_env else 'plain local process'}, "
        f"{'.aws-sam/build as shipped, no bytecode written' if args.sam_build else 'sources with bytecode cached'}.\n"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
