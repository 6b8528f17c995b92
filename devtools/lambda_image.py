"""The python3.13 Lambda base image `sam local` runs our functions on, under the name SAM CLI looks for.

SAM CLI 1.153.1 runs a ZIP function of runtime python3.13 and architecture A on
`public.ecr.aws/lambda/python:3.13-A` (samcli/local/docker/lambda_image.py: `_INVOKE_REPO_PREFIX` and
`Runtime.get_image_name_tag`). On every invoke it builds a derived image from it,
`samcli/lambda-python:3.13-A-<hash of the layer names>`, which ADDs its Runtime Interface Emulator
(`/var/rapid/aws-lambda-rie`) and our template's layer (into /opt). It runs the container with the
RIE as entry point and no command, so the RIE executes the runtime's `/var/runtime/bootstrap`, with
the handler in `_HANDLER`. With `--skip-pull-image` that derived build uses the local base image as
it is and never asks the registry.

`ensure_image()` makes sure the base image is there:
- already present: an official image (pulled before) is used as is; our stand-in is kept while its
  inputs are unchanged (their hash is the image label `dev.wallet.lambda-standin`), else rebuilt;
- missing: pulled when the registry answers (on a laptop with internet, the official image);
- otherwise (no registry, as on the development machines and CI) built offline as a stand-in: a
  Debian bookworm minbase root file system (debootstrap, from Debian's packages), the local Python
  3.13 copied in at its own prefix (pyenv's build links libpython through an rpath to that prefix),
  `awslambdaric` from PyPI in /var/runtime, a `/var/runtime/bootstrap` that starts it the way the
  official image's does (sys.path: task root, then the layer's /opt/python), `/lambda-entrypoint.sh`,
  and the Lambda environment (LAMBDA_TASK_ROOT, LAMBDA_RUNTIME_DIR, PATH, LANG, TZ, WORKDIR /var/task),
  imported with `docker import`.

The stand-in differs from the official image in the OS (Debian instead of Amazon Linux 2023) and in
lacking the AWS SDK (boto3) the official runtime bundles; our functions use boto3 only to read the
database URI from SSM or Secrets Manager, which local runs never do (they get MONGODB_URI).

`python -m devtools.lambda_image` builds or checks it and prints its name.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools import debian
from devtools.paths import LOCAL

WORK = LOCAL
RUNTIME = "python3.13"
AWSLAMBDARIC = "4.2.2"
DEBIAN_SUITE = "bookworm"
LABEL = "dev.wallet.lambda-standin"
# What the Python build and awslambdaric link against, beyond minbase (checked after the build).
DEBIAN_PACKAGES = (
    "ca-certificates",
    "libbz2-1.0",
    "libexpat1",
    "libffi8",
    "libgdbm6",
    "liblzma5",
    "libncursesw6",
    "libreadline8",
    "libsqlite3-0",
    "libssl3",
    "libtinfo6",
    "libuuid1",
    "zlib1g",
)
PULL_TIMEOUT_SECONDS = 300

BOOTSTRAP = """#!/bin/sh
# The python3.13 runtime's bootstrap: the RIE (or Lambda) executes it with the handler in _HANDLER.
export AWS_EXECUTION_ENV=AWS_Lambda_python3.13
if [ -z "$AWS_LAMBDA_EXEC_WRAPPER" ]; then
  exec /var/lang/bin/python3.13 /var/runtime/bootstrap.py
fi
if [ ! -x "$AWS_LAMBDA_EXEC_WRAPPER" ]; then
  echo "$AWS_LAMBDA_EXEC_WRAPPER: not an executable file" >&2
  exit 126
fi
exec -- "$AWS_LAMBDA_EXEC_WRAPPER" /var/lang/bin/python3.13 /var/runtime/bootstrap.py
"""

BOOTSTRAP_PY = '''"""Start awslambdaric, modules searched as on Lambda: the task root, then the layers' /opt/python."""

import os
import sys

import awslambdaric.__main__ as ric


def main() -> None:
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    if "PYTHONPATH" not in os.environ:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        front = [task_root, f"/opt/python/lib/python{version}/site-packages", "/opt/python"]
        sys.path[:] = front + [entry for entry in sys.path if entry not in front]
    ric.main([sys.argv[0], os.environ["_HANDLER"]])


if __name__ == "__main__":
    main()
'''

ENTRYPOINT = """#!/bin/sh
# As the official images: the handler is the command; without a Runtime API, start under the emulator.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" >&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ] && [ -x /usr/local/bin/aws-lambda-rie ]; then
  exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap
fi
exec /var/runtime/bootstrap
"""

ENVIRONMENT = {
    "LANG": "en_US.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}


class ImageError(RuntimeError):
    pass


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} lambda image: {message}", file=sys.stderr, flush=True)


def host_architecture() -> str:
    """This machine's architecture in Lambda's words."""
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]


def architecture() -> str:
    """SAM_ARCH if set, else this machine's (the stand-in runs natively only)."""
    return os.environ.get("SAM_ARCH") or host_architecture()


def image_name(arch: str | None = None) -> str:
    """The exact base image name SAM CLI uses for python3.13 on `arch`."""
    from samcli.local.docker.lambda_image import LambdaImage, Runtime

    return f"{LambdaImage._INVOKE_REPO_PREFIX}/{Runtime.get_image_name_tag(RUNTIME, arch or architecture())}"


def python_prefix() -> Path:
    """The Python 3.13 installation the stand-in copies: the one behind this interpreter (the venv's)."""
    prefix = Path(sys.base_prefix).resolve()
    if sys.version_info[:2] != (3, 13) or not (prefix / "bin" / "python3.13").exists():
        raise ImageError(f"need Python 3.13 to build the stand-in image, running {sys.version.split()[0]} in {prefix}")
    return prefix


def inputs_hash(arch: str) -> str:
    """What the stand-in is made of: this recipe, the Python build, awslambdaric, suite and architecture."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    for part in (sys.version, str(python_prefix()), AWSLAMBDARIC, DEBIAN_SUITE, arch):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:32]


def debian_mirror() -> str:
    """The Debian mirror apt is configured with here (deb822 or one-line sources), for debootstrap."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for block in sources.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line and not line.startswith("#"))
            uris = fields.get("URIs", "").split()
            if uris and DEBIAN_SUITE in fields.get("Suites", "").split():
                return uris[0]
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        for line in listing.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == DEBIAN_SUITE:
                return next(word for word in words[1:] if "://" in word)
    return "http://deb.debian.org/debian"


def _docker(*arguments: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *arguments], capture_output=True, text=True, **options)


def current_label(name: str) -> str | None:
    """None when the image is missing; "" for an image that is not our stand-in (the official one)."""
    result = _docker("image", "inspect", "--format", "{{json .Config.Labels}}", name)
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout.strip() or "null") or {}
    return labels.get(LABEL, "")


def try_pull(name: str) -> bool:
    """Pull the official image; False at once where the registry does not answer."""
    _log(f"pulling {name}")
    try:
        result = _docker("pull", "--quiet", name, timeout=PULL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _log("pull timed out")
        return False
    if result.returncode != 0:
        _log(f"pull failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return result.returncode == 0


def _ensure_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    if os.geteuid() != 0:
        raise ImageError("debootstrap is missing; install it (apt-get install debootstrap) or run as root")
    _log("installing debootstrap (apt-get)")
    failure = debian.install("debootstrap", recommends=True)
    if failure is not None:
        raise ImageError(failure)


def _debian_architecture(arch: str) -> str:
    return {"x86_64": "amd64", "arm64": "arm64"}[arch]


def build_standin(name: str, arch: str, digest: str) -> None:
    host = host_architecture()
    if arch != host:
        raise ImageError(f"the offline stand-in runs natively only: this machine is {host}, asked for {arch}")
    if os.geteuid() != 0:
        raise ImageError("building the stand-in image (debootstrap) needs root")
    _ensure_debootstrap()
    prefix = python_prefix()
    WORK.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="lambda-image-", dir=WORK))
    rootfs = scratch / "rootfs"
    try:
        started = time.monotonic()
        mirror = debian_mirror()
        _log(f"debootstrap --variant=minbase {DEBIAN_SUITE} from {mirror}")
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={_debian_architecture(arch)}",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            detail = log.read_text()[-1500:] if log.exists() else result.stderr[-1500:]
            raise ImageError(f"debootstrap failed:\n{detail}")
        _log(f"root file system in {time.monotonic() - started:.0f} s; copying Python from {prefix}")
        target = rootfs / str(prefix).lstrip("/")
        shutil.copytree(
            prefix,
            target,
            symlinks=True,
            ignore=shutil.ignore_patterns("test", "idlelib", "tkinter", "turtledemo", "site-packages", "*.a"),
        )
        (target / "lib" / "python3.13" / "site-packages").mkdir(exist_ok=True)
        lang = rootfs / "var" / "lang" / "bin"
        lang.mkdir(parents=True)
        for alias in ("python3.13", "python3", "python"):
            (lang / alias).symlink_to(prefix / "bin" / "python3.13")
        runtime = rootfs / "var" / "runtime"
        _log(f"awslambdaric {AWSLAMBDARIC} into /var/runtime")
        pip = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(runtime),
                "--only-binary",
                ":all:",
                "--implementation",
                "cp",
                "--python-version",
                "3.13",
                "--platform",
                f"manylinux2014_{'x86_64' if arch == 'x86_64' else 'aarch64'}",
                f"awslambdaric=={AWSLAMBDARIC}",
            ],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            raise ImageError(f"pip install awslambdaric failed: {pip.stderr.strip()[-1500:]}")
        (runtime / "bootstrap").write_text(BOOTSTRAP)
        (runtime / "bootstrap.py").write_text(BOOTSTRAP_PY)
        (rootfs / "lambda-entrypoint.sh").write_text(ENTRYPOINT)
        for script in (runtime / "bootstrap", rootfs / "lambda-entrypoint.sh"):
            script.chmod(0o755)
        for folder in ("var/task", "opt", "tmp"):
            (rootfs / folder).mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(runtime)], check=True, capture_output=True)
        # Everything the interpreter and the runtime client load must resolve inside the image.
        check = subprocess.run(
            [
                "chroot",
                str(rootfs),
                "/var/lang/bin/python3.13",
                "-c",
                "import sys; sys.path.insert(0, '/var/runtime'); "
                "import ssl, sqlite3, ctypes, decimal, lzma, bz2, zlib, uuid, json, readline, awslambdaric.__main__",
            ],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise ImageError(f"the stand-in's Python does not start: {check.stderr.strip()[-1500:]}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        _log("docker import")
        changes = [f"ENV {key}={value}" for key, value in ENVIRONMENT.items()]
        changes += [
            "WORKDIR /var/task",
            'ENTRYPOINT ["/lambda-entrypoint.sh"]',
            f"LABEL {LABEL}={digest}",
        ]
        arguments = [item for change in changes for item in ("--change", change)]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", *arguments, "-", name], stdin=tar.stdout, capture_output=True, text=True
        )
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise ImageError(f"docker import failed: {imported.stderr.strip()[-1500:]}")
        _log(f"built {name} in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ensure_image(arch: str | None = None, *, pull: bool = True) -> str:
    """The base image SAM needs, present locally; returns its name. Needs a running Docker engine."""
    arch = arch or architecture()
    name = image_name(arch)
    digest = inputs_hash(arch)
    label = current_label(name)
    if label == "":
        _log(f"{name} is present (the official image): used as is")
        return name
    if label == digest:
        _log(f"{name} is present (the stand-in, inputs unchanged)")
        return name
    if label is None and pull and try_pull(name):
        return name
    _log(f"building the stand-in for {name}" + (" (its inputs changed)" if label else ""))
    build_standin(name, arch, digest)
    if label:  # the outdated stand-in and SAM's images built on it, which inherited its label
        outdated = _docker("images", "--quiet", "--filter", f"label={LABEL}={label}").stdout.split()
        if outdated:
            _docker("image", "rm", "--force", *sorted(set(outdated)))
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description="Ensure the python3.13 Lambda base image for sam local.")
    parser.add_argument("--no-pull", action="store_true", help="build the stand-in without trying the registry")
    arguments = parser.parse_args()
    try:
        print(ensure_image(pull=not arguments.no_pull))
    except ImageError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
