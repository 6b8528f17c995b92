"""`make sam-invoke` and `make sam-api`: the functions in real Lambda containers with SAM CLI.

`invoke FUNCTION EVENT` runs `sam local invoke`; `api` runs `sam local start-api --warm-containers
EAGER` on 127.0.0.1:PORT (default 3000). Both first make sure of everything SAM needs:

- a Docker engine: a running one (`docker info` answers); else, as root, Debian's `docker.io`
  (installed with apt when `dockerd` is missing) started in the background as
  `dockerd --iptables=false --ip-masq=false --ip-forward=false` (log in .local/dockerd.log) and
  stopped again on exit. Without NAT or forwarding, containers reach only the local bridge: this
  machine's bridge address, and the port SAM publishes on 127.0.0.1 to reach each container;
- the python3.13 base image under the name SAM looks for (devtools/lambda_image.py: the official
  image where the registry answers, else an offline stand-in), used with --skip-pull-image;
- `sam build` for this machine's architecture (SAM_ARCH), as `make sam-build` does, into
  SAM_BUILD_DIR when set (the tests build into a folder of their own: a `sam build` elsewhere in the
  checkout replaces .aws-sam/build under a starting start-api, which then fails with SAM's "Can not
  observe non exist path"), else .aws-sam/build;
- the functions' image (the base image, SAM's emulator and the template's layer) built once while
  what goes into it is unchanged, not again on every invoke and for every warm container (see
  `reuse_unchanged_function_images`);
- the database where containers reach it: the embedded server listening on the bridge's gateway
  address (e.g. 172.17.0.1, never beyond this machine), or MONGODB_URI (one on loopback is relayed
  by a plain TCP relay listening on that gateway address); handed to every function with
  `--env-vars` (MONGODB_URI, MONGODB_DATABASE, POWERTOOLS_LOG_LEVEL; template.yaml declares them,
  since --env-vars only overrides declared variables).

SAM CLI does not emulate HTTP API JWT authorizers: it skips them (samcli/lib/providers/
sam_api_provider.py: "currently unsupported (must be a Lambda Authorizer)") and builds
requestContext without `authorizer`, so every protected route would answer 401. `api` therefore runs
SAM CLI's own `start-api` command in this process with one addition in front of its container
runner: API Gateway's JWT check, with the local development key (devtools/local_auth.py), exactly as
`make run` does: a bad token is API Gateway's 401 before any container runs, a good one puts the
claims in requestContext.authorizer.jwt. It also runs the expiry function on the template's schedule
(EXPIRY_INTERVAL_SECONDS shortens it), invoking its warm container, and logs one line per request.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from devtools import debian
from devtools.paths import LOCAL, ROOT, SAM_BUILD

WORK = LOCAL
BUILD_DIR = SAM_BUILD  # make sam-build's; SAM_BUILD_DIR chooses another (build_dir())
DOCKERD_LOG = WORK / "dockerd.log"
FUNCTION_IMAGES = WORK / "sam-function-images.json"  # reuse_unchanged_function_images()
VENV_BIN = Path(sys.executable).parent
SAM = VENV_BIN / "sam"
DEFAULT_PORT = 3000
ENGINE_START_SECONDS = 60


class SamLocalError(RuntimeError):
    pass


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _sam_environment() -> dict[str, str]:
    """SAM CLI with telemetry off and the venv first on PATH (its python3.13 builds the layer)."""
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


# --- the container engine ------------------------------------------------------------------------


def docker_ready() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


class Engine:
    """A running Docker engine; `stop()` ends it only if `ensure_engine` started it."""

    def __init__(self, process: subprocess.Popen | None) -> None:
        self.process = process

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _install_docker() -> None:
    """Debian's docker.io, without letting its package scripts start the service with default options."""
    _log("installing Debian's docker.io (apt-get)")
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        failure = debian.install("docker.io")
        if failure is not None:
            raise SamLocalError(failure)
    finally:
        if created:
            policy.unlink()


def _dockerd() -> str | None:
    for candidate in ("/usr/sbin/dockerd", "/usr/bin/dockerd"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = subprocess.run(["sh", "-c", "command -v dockerd"], capture_output=True, text=True).stdout.strip()
    return found or None


def ensure_engine() -> Engine:
    """A Docker engine that answers: the running one, or Debian's dockerd started here (as root)."""
    if docker_ready():
        return Engine(None)
    if os.geteuid() != 0:
        raise SamLocalError(
            "no Docker engine: `docker info` does not answer, and installing and starting one needs root. "
            "Start Docker (or run as root), or use the in-process `make run` / `make invoke`."
        )
    started = time.monotonic()
    dockerd = _dockerd()
    if dockerd is None or not _has_docker_client():
        _install_docker()
        dockerd = _dockerd()
        if dockerd is None:
            raise SamLocalError("docker.io was installed but no dockerd binary was found")
    WORK.mkdir(exist_ok=True)
    log = DOCKERD_LOG.open("a")
    _log(f"starting {dockerd} (no iptables, no masquerading, no forwarding; log: {DOCKERD_LOG.relative_to(ROOT)})")
    process = subprocess.Popen(
        [dockerd, "--iptables=false", "--ip-masq=false", "--ip-forward=false"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + ENGINE_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = DOCKERD_LOG.read_text().splitlines()[-15:]
            raise SamLocalError("dockerd exited at start:\n" + "\n".join(tail))
        if docker_ready():
            _log(f"Docker engine ready in {time.monotonic() - started:.1f} s")
            return Engine(process)
        time.sleep(0.5)
    Engine(process).stop()
    raise SamLocalError(f"dockerd did not answer within {ENGINE_START_SECONDS} s; see {DOCKERD_LOG}")


def _has_docker_client() -> bool:
    return subprocess.run(["sh", "-c", "command -v docker"], capture_output=True).returncode == 0


def bridge_gateway() -> str:
    """This machine's address on Docker's default bridge: where containers reach the host."""
    inspected = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .}}"], capture_output=True, text=True
    )
    if inspected.returncode != 0:
        raise SamLocalError(f"docker network inspect bridge failed: {inspected.stderr.strip()}")
    network = json.loads(inspected.stdout)
    for config in (network.get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway"):
            return config["Gateway"].split("/")[0]
    interface = (network.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("256s", interface.encode()[:15])
        answer = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
    return socket.inet_ntoa(answer[20:24])


def sam_containers(*, running_only: bool = False) -> dict[str, str]:
    """The Lambda containers SAM CLI runs from this build (build_dir(): their code is mounted from it),
    id to function name; other runs' containers on the same engine are theirs."""
    listed = subprocess.run(
        ["docker", "ps", *([] if running_only else ["-a"]), "-q", "--filter", "label=sam.cli.container.type=lambda"],
        capture_output=True,
        text=True,
    )
    ids = listed.stdout.split()
    if not ids:
        return {}
    shape = '{{.Id}} {{index .Config.Labels "sam.cli.function.name"}}{{range .Mounts}} {{.Source}}{{end}}'
    inspected = subprocess.run(["docker", "inspect", "--format", shape, *ids], capture_output=True, text=True)
    ours = str(build_dir()) + os.sep
    found = {}
    for line in inspected.stdout.splitlines():
        container, function, *sources = line.split()
        if any(source.startswith(ours) for source in sources):
            found[container] = function
    return found


def stop_sam_containers() -> None:
    """Remove the Lambda containers SAM CLI left behind from this build (it removes them itself on a
    clean exit)."""
    ids = list(sam_containers())
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


# --- build and database ---------------------------------------------------------------------------


def architecture() -> str:
    from devtools.lambda_image import architecture as lambda_architecture

    return lambda_architecture()


def build_dir() -> Path:
    """Where `sam build` writes and `sam local` reads: SAM_BUILD_DIR, else .aws-sam/build."""
    chosen = os.environ.get("SAM_BUILD_DIR")
    return Path(chosen).resolve() if chosen else BUILD_DIR


def built_template() -> Path:
    return build_dir() / "template.yaml"


def sam_build(arch: str | None = None) -> None:
    """`make sam-build`: SAM's cached build for `arch`, then bytecode (Lambda's file system is read-only)."""
    arch = arch or architecture()
    started = time.monotonic()
    result = subprocess.run(
        [str(SAM), "build", "--build-dir", str(build_dir()), "--parameter-overrides", f"Architecture={arch}"],
        cwd=ROOT,
        env=_sam_environment(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SamLocalError(f"sam build failed:\n{(result.stdout + result.stderr)[-3000:]}")
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(build_dir())],
        check=True,
        capture_output=True,
    )
    _log(f"sam build ({arch}) in {time.monotonic() - started:.1f} s")


# --- the functions' image: built once while its inputs are unchanged -------------------------------

_IMAGES_LOCK = threading.Lock()


def reuse_unchanged_function_images() -> None:
    """Make SAM CLI (in this process) reuse the function image it built last while its inputs are unchanged.

    For a function with a layer defined in the template, SAM CLI 1.153.1 builds the image it runs
    (FROM the base image, ADD its emulator, ADD the layer into /opt: samcli/local/docker/lambda_image.py
    `LambdaImage.build`) again on every `sam local invoke`, and for each function's container that
    `--warm-containers EAGER` starts, though nothing changed: here ~8 s each (a 66 MB layer sent to
    Docker as a build context), 26 invokes and 25 containers in tests/sam. This wrapper returns the
    image SAM built last instead, when Docker still has that very image (same id) and every input is
    as it was then: SAM CLI's version, runtime and architecture, the base image's id, the emulator
    binary, and every file of each layer (path, size, mtime, mode; `sam build` rewrites them all).
    Anything else (an image function, a layer from an ARN, --force-image-build) goes to SAM as is.
    What was built is remembered in .local/sam-function-images.json, so that `sam local invoke`, a
    process per call, reuses it too.
    """
    from samcli.local.docker.lambda_image import LambdaImage

    if getattr(LambdaImage.build, "reuses_unchanged_images", False):
        return
    original = LambdaImage.build

    def build(self, runtime, packagetype, image, layers, architecture, stream=None, function_name=None):
        def sam_builds() -> str:
            return original(self, runtime, packagetype, image, layers, architecture, stream, function_name)

        inputs = _function_image_inputs(self, runtime, packagetype, image, layers, architecture)
        if inputs is None:
            return sam_builds()
        with _IMAGES_LOCK:  # EAGER starts every container at once: one builds, the others reuse
            known = _read_function_images().get(inputs)
            if known and _image_id(self.docker_client, known["tag"]) == known["id"]:
                return known["tag"]
            tag = sam_builds()
            built = _image_id(self.docker_client, tag)
            if built:
                _remember_function_image(inputs, tag, built)
            return tag

    build.reuses_unchanged_images = True
    LambdaImage.build = build


def _function_image_inputs(lambda_image, runtime, packagetype, image, layers, architecture) -> str | None:
    """A digest of everything SAM's image build puts in the image, or None where SAM must decide itself."""
    import samcli
    from samcli.lib.utils.codeuri import resolve_code_path
    from samcli.lib.utils.packagetype import ZIP
    from samcli.local.docker.lambda_image import LambdaImage
    from samcli.local.docker.utils import get_rapid_name

    from devtools.lambda_image import RUNTIME, image_name

    if (
        packagetype != ZIP
        or image
        or runtime != RUNTIME
        or lambda_image.invoke_images
        or lambda_image.force_image_build
        or not layers
        or not all(layer.is_defined_within_template and layer.codeuri for layer in layers)
    ):
        return None
    base = _image_id(lambda_image.docker_client, image_name(architecture))
    emulator = Path(LambdaImage._RAPID_SOURCE_PATH, get_rapid_name(architecture))
    if base is None or not emulator.is_file():
        return None
    digest = hashlib.sha256()
    for part in (samcli.__version__, runtime, architecture, base, _stat_line(emulator, emulator.name)):
        digest.update(part.encode() + b"\0")
    for layer in layers:
        folder = Path(resolve_code_path(lambda_image.layer_downloader.cwd, layer.codeuri))
        if not folder.is_dir():
            return None
        digest.update(f"layer {layer.name} {folder}\0".encode())
        for root, directories, files in os.walk(folder, followlinks=True):  # SAM's tarball follows links
            directories.sort()
            for name in sorted(files):
                path = Path(root, name)
                digest.update(_stat_line(path, str(path.relative_to(folder))).encode() + b"\0")
    return digest.hexdigest()


def _stat_line(path: Path, shown: str) -> str:
    found = path.stat()
    return f"{shown} {found.st_size} {found.st_mtime_ns} {found.st_mode:o}"


def _image_id(docker_client, name: str) -> str | None:
    import docker

    try:
        return docker_client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None


def _read_function_images() -> dict[str, dict[str, str]]:
    try:
        return json.loads(FUNCTION_IMAGES.read_text())
    except (OSError, ValueError):
        return {}


def _remember_function_image(inputs: str, tag: str, image_id: str) -> None:
    """One entry per image name: the inputs of the image it names now."""
    known = {key: value for key, value in _read_function_images().items() if value.get("tag") != tag}
    known[inputs] = {"tag": tag, "id": image_id}
    FUNCTION_IMAGES.parent.mkdir(exist_ok=True)
    partial = FUNCTION_IMAGES.with_name(f"{FUNCTION_IMAGES.name}.{os.getpid()}")
    partial.write_text(json.dumps(known, indent=2) + "\n")
    partial.replace(FUNCTION_IMAGES)  # whole or not at all: another process may be reading it


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def container_uri(uri: str, relay: tuple[str, int]) -> str:
    """`uri` with its hosts replaced by the relay, as one direct connection (credentials and options kept)."""
    parts = urlsplit(uri)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += f"{relay[0]}:{relay[1]}"
    options = [(key, value) for key, value in parse_qsl(parts.query) if key.lower() not in {"replicaset"}]
    options = [(key, value) for key, value in options if key.lower() != "directconnection"]
    options.append(("directConnection", "true"))
    return urlunsplit((parts.scheme, netloc, parts.path or "/", urlencode(options), ""))


def container_database(gateway: str, cleanup: list[Callable[[], None]]) -> str:
    """A MongoDB URI the containers reach; servers started here are stopped by `cleanup`.

    The embedded server listens on the bridge's address itself; a MONGODB_URI on loopback is
    reached through a plain TCP relay on that address, as one direct connection (the replica set's
    own member addresses are loopback ones, which a container cannot reach)."""
    from pymongo.uri_parser import parse_uri

    from devtools.embedded_mongo import EmbeddedMongo, external_uri
    from devtools.tcp_relay import TcpRelay

    uri = external_uri()
    if uri is None:
        server = EmbeddedMongo(host=gateway)
        server.start()
        cleanup.append(server.stop)
        return server.uri
    if uri.startswith("mongodb+srv://"):
        return uri
    nodes = parse_uri(uri)["nodelist"]
    if not any(_loopback(host) for host, _ in nodes):
        return uri
    relay = TcpRelay(nodes[0], host=gateway).start()
    cleanup.append(relay.stop)
    return container_uri(uri, (gateway, relay.port))


def write_env_vars(path: Path, uri: str, database: str, *, log_level: str = "INFO") -> Path:
    """The --env-vars file: the same variables for every function ("Parameters")."""
    variables = {
        "MONGODB_URI": uri,
        "MONGODB_DATABASE": database,
        "MONGODB_URI_PARAMETER": "",
        "MONGODB_URI_SECRET": "",
        "POWERTOOLS_LOG_LEVEL": log_level,
        # No EventBridge here: the functions deliver their events to a file inside their container.
        "EVENTS_FILE": "/tmp/wallet-events.jsonl",
    }
    path.write_text(json.dumps({"Parameters": variables}, indent=2))
    path.chmod(0o600)
    return path


def parameter_overrides(arch: str) -> list[str]:
    from devtools.local_auth import AUDIENCE, ISSUER

    return ["--parameter-overrides", f"Architecture={arch}", f"JwtIssuer={ISSUER}", f"JwtAudience={AUDIENCE}"]


def local_options(env_vars: Path, arch: str) -> list[str]:
    return [
        "--template",
        str(built_template()),
        "--env-vars",
        str(env_vars),
        "--skip-pull-image",
        *parameter_overrides(arch),
    ]


@contextlib.contextmanager
def prepared(*, build: bool = True) -> Iterator[tuple[str, str, Engine]]:
    """Engine, image, build and a database the containers reach: yields (uri, arch, engine)."""
    from devtools.lambda_image import ImageError, ensure_image

    cleanup: list[Callable[[], None]] = []
    try:
        engine = ensure_engine()
        cleanup.append(engine.stop)
        arch = architecture()
        try:
            ensure_image(arch)
        except ImageError as error:
            raise SamLocalError(str(error)) from None
        if build:
            sam_build(arch)
        uri = container_database(bridge_gateway(), cleanup)
        yield uri, arch, engine
    finally:
        for step in reversed(cleanup):
            step()


def invoke_command(function: str, event: Path, env_vars: Path, arch: str) -> list[str]:
    """`sam local invoke`, through `sam_cli` (SAM CLI's own command, reusing an unchanged image); run from ROOT."""
    command = ["local", "invoke", function, "--event", str(event), *local_options(env_vars, arch)]
    return [sys.executable, "-m", "devtools.sam_local", "sam", *command]


def invoke(function: str, event: Path, *, build: bool = True) -> int:
    """`make sam-invoke`: one `sam local invoke`, its output as SAM prints it."""
    with prepared(build=build) as (uri, arch, _engine), tempfile.TemporaryDirectory(dir=_work()) as scratch:
        env_vars = write_env_vars(Path(scratch) / "env.json", uri, os.environ.get("MONGODB_DATABASE", "wallet"))
        _log(f"sam local invoke {function} --event {event} (database {uri})")
        return subprocess.run(
            invoke_command(function, event, env_vars, arch), cwd=ROOT, env=_sam_environment()
        ).returncode


def _work() -> Path:
    WORK.mkdir(exist_ok=True)
    return WORK


# --- start-api: the JWT authorizer and the schedule in front of SAM's runner ----------------------


class AuthorizingRunner:
    """SAM CLI's LocalLambdaRunner behind API Gateway's JWT authorizer, as `make run` checks tokens."""

    def __init__(self, runner, public: set[str]) -> None:
        self._runner = runner
        self._public = public

    def __getattr__(self, name: str):
        return getattr(self._runner, name)

    def invoke(self, function_identifier: str, event: str, tenant_id=None, stdout=None, stderr=None, **options):
        from samcli.lib.utils.stream_writer import StreamWriter

        from devtools.gateway import access_line, authorize

        started = time.perf_counter()
        request = json.loads(event)
        refused = None if function_identifier in self._public else authorize(request)
        result = None
        if refused is None:
            captured = io.StringIO()
            result = self._runner.invoke(
                function_identifier,
                json.dumps(request, sort_keys=True),
                tenant_id=tenant_id,
                stdout=StreamWriter(captured, auto_flush=True),
                stderr=stderr,
                **options,
            )
            output = captured.getvalue()
        else:
            output = json.dumps(refused)
        if stdout is not None:
            stdout.write_str(output)
        try:
            status = json.loads(output).get("statusCode", 200)
        except (ValueError, AttributeError):
            status = "?"
        _log(access_line(request, status, started, function_identifier))
        return result


class ContainerFunction:
    """A scheduled function as local_api.Scheduler sees it, invoked in its SAM container."""

    def __init__(self, name: str, schedule: str, runner) -> None:
        self.name = name
        self.schedule = schedule
        self._runner = runner

    def invoke(self, event: dict) -> dict:
        from samcli.lib.utils.stream_writer import StreamWriter

        captured = io.StringIO()
        self._runner.invoke(
            self.name,
            json.dumps(event),
            stdout=StreamWriter(captured, auto_flush=True),
            stderr=StreamWriter(sys.stderr, auto_flush=True),
        )
        return json.loads(captured.getvalue())


def _install_hooks() -> None:
    """Wrap the runner SAM's start-api hands its API Gateway emulation; run the schedule while it serves."""
    from samcli.commands.local.lib import local_api_service

    from devtools.local_api import Scheduler, load_functions

    reuse_unchanged_function_images()
    functions = load_functions()
    public = {name for name, function in functions.items() if function.public}
    original = local_api_service.LocalApigwService

    class AuthorizingApigwService(original):
        def __init__(self, *arguments, lambda_runner, **options) -> None:
            super().__init__(*arguments, lambda_runner=AuthorizingRunner(lambda_runner, public), **options)
            scheduled = {
                name: ContainerFunction(name, function.schedule, lambda_runner)
                for name, function in functions.items()
                if function.schedule
            }
            self._scheduler = Scheduler(scheduled)  # type: ignore[arg-type]

        def run(self) -> None:
            self._scheduler.start()
            _log(f"JWT authorizer: the local development key; schedule: {self._scheduler.describe()}")
            try:
                super().run()
            finally:  # before SAM CLI removes the containers
                self._scheduler.stop()
                self._scheduler.join(timeout=30)

    local_api_service.LocalApigwService = AuthorizingApigwService


def start_api_arguments(port: int, env_vars: Path, arch: str) -> list[str]:
    return [
        "local",
        "start-api",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--warm-containers",
        "EAGER",
        *local_options(env_vars, arch),
    ]


def serve(port: int, *, build: bool = True) -> int:
    """`make sam-api`: SAM CLI's start-api in this process, with the JWT check and the schedule."""
    from devtools.local_api import _port_free

    _port_free(port)
    os.environ.update(_sam_environment())
    code = 0
    try:
        with prepared(build=build) as (uri, arch, _engine), tempfile.TemporaryDirectory(dir=_work()) as scratch:
            database = os.environ.get("MONGODB_DATABASE", "wallet")
            env_vars = write_env_vars(Path(scratch) / "env.json", uri, database)
            _install_hooks()
            from samcli.cli.main import cli

            _log(f"sam local start-api on http://127.0.0.1:{port} (database {uri}, {database}); Ctrl-C stops")
            try:
                cli.main(args=start_api_arguments(port, env_vars, arch), prog_name="sam", standalone_mode=False)
            except KeyboardInterrupt:
                pass
            finally:
                stop_sam_containers()
    except SamLocalError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        code = 1
    print("stopped", flush=True)
    return code


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def sam_cli(arguments: list[str]) -> None:
    """SAM CLI itself (`sam ARGUMENTS`), reusing an unchanged function image (invoke_command runs this)."""
    from samcli.cli.main import cli

    reuse_unchanged_function_images()
    cli.main(args=arguments, prog_name="sam")


def main() -> None:
    if sys.argv[1:2] == ["sam"]:  # everything after it is SAM CLI's, options included
        sam_cli(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sam", help="SAM CLI with these arguments, reusing an unchanged function image")
    run_invoke = commands.add_parser("invoke", help="sam local invoke FUNCTION with EVENT")
    run_invoke.add_argument("function")
    run_invoke.add_argument("event", type=Path)
    no_build = "use the last build (SAM_BUILD_DIR, else .aws-sam/build) as it is"
    run_invoke.add_argument("--no-build", action="store_true", help=no_build)
    api = commands.add_parser("api", help="sam local start-api --warm-containers EAGER")
    api.add_argument("--port", type=int, default=int(os.environ.get("PORT") or DEFAULT_PORT))
    api.add_argument("--no-build", action="store_true", help=no_build)
    arguments = parser.parse_args()
    # Ctrl-C and SIGTERM stop cleanly, even when started with SIGINT ignored (as a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if arguments.command == "invoke":
        try:
            sys.exit(invoke(arguments.function, arguments.event, build=not arguments.no_build))
        except SamLocalError as error:
            raise SystemExit(f"error: {error}") from None
    code = serve(arguments.port, build=not arguments.no_build)
    # SAM CLI has removed its containers by now; skip the interpreter's teardown, where docker-py's
    # leftover log streams print "Exception ignored" noise after our last line.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
