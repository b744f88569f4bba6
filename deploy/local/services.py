"""Start, stop and check the local Kafka broker and FerretDB store.

State lives under the repo root's ``.local/`` folder (see ``deploy/local/README.md``).
Run as ``python -m deploy.local.services up|down|status [kafka|ferretdb ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pymongo import MongoClient
from pymongo.uri_parser import parse_uri

__all__ = [
    "SERVICES",
    "ServiceError",
    "down",
    "kafka_probe",
    "main",
    "mongo_probe",
    "restart_kafka",
    "start",
    "status",
    "stop",
    "up",
    "wait_kafka_ready",
    "wait_mongo_ready",
    "wait_ready",
]

ServiceName = Literal["kafka", "ferretdb"]
SERVICES: tuple[ServiceName, ...] = ("kafka", "ferretdb")

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_MONGODB_URI = "mongodb://127.0.0.1:27017"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
STATUS_PROBE_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 20

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
STATE_DIR = REPO_ROOT / ".local"
RUN_DIR = STATE_DIR / "run"
LOG_DIR = STATE_DIR / "log"
KAFKA_DIR = STATE_DIR / "kafka"
KAFKA_LIBS = KAFKA_DIR / "libs"
KAFKA_DATA = KAFKA_DIR / "data"
KAFKA_PROPERTIES = KAFKA_DIR / "server.properties"
KAFKA_LOG4J = HERE / "kafka" / "log4j2.properties"
FERRETDB_BIN = STATE_DIR / "bin" / "courier-ferretdb"
FERRETDB_DATA = STATE_DIR / "ferretdb" / "data"
BUILD_SH = HERE / "build.sh"

T = TypeVar("T")


class ServiceError(RuntimeError):
    """A service could not be started, stopped or reached."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def bind_host(self) -> str:
        """The literal address to listen on ("localhost" is bound as IPv4)."""
        return "127.0.0.1" if self.host == "localhost" else self.host


def kafka_bootstrap() -> str:
    return os.environ.get("COURIER_KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP)


def mongodb_uri() -> str:
    return os.environ.get("COURIER_MONGODB_URI", DEFAULT_MONGODB_URI)


def kafka_address(bootstrap: str | None = None) -> Address:
    first = (bootstrap or kafka_bootstrap()).split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise ServiceError(f"kafka: bootstrap server {first!r} is not host:port")
    return Address(host.strip("[]") or "127.0.0.1", int(port))


def mongodb_address(uri: str | None = None) -> Address:
    nodes = parse_uri(uri or mongodb_uri())["nodelist"]
    host, port = nodes[0]
    return Address(str(host), int(port))


# --- readiness probes -------------------------------------------------------


def _run_coro(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # Called from async code (e.g. an async test): a loop is already running in
    # this thread, so run ours in a helper thread instead of nesting.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="courier-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def _port_open(address: Address, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


async def kafka_probe(bootstrap: str, request_timeout_ms: int = 5000) -> None:
    """Raise unless the cluster answers a metadata request and lists a broker.

    Bound it with ``asyncio.timeout``: aiokafka's own timeouts do not cover
    every step of bootstrapping.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="courier-local-probe",
        request_timeout_ms=request_timeout_ms,
    )
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        raise ServiceError("kafka: metadata lists no live broker yet")


async def _kafka_probe_within(bootstrap: str, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await kafka_probe(bootstrap, max(1000, int(seconds * 1000)))


def mongo_probe(uri: str, timeout: float = STATUS_PROBE_TIMEOUT_S) -> None:
    """Raise unless the server answers ``ping``."""
    ms = max(500, int(timeout * 1000))
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=ms,
    )
    with client:
        client.admin.command("ping")


def _kafka_healthy(bootstrap: str, timeout: float) -> bool:
    # A closed port fails fast without aiokafka's connection-error logging.
    if not _port_open(kafka_address(bootstrap)):
        return False
    try:
        _run_coro(lambda: _kafka_probe_within(bootstrap, timeout))
    except Exception:
        return False
    return True


def _mongo_healthy(uri: str, timeout: float) -> bool:
    if not _port_open(mongodb_address(uri)):
        return False
    try:
        mongo_probe(uri, timeout)
    except Exception:
        return False
    return True


def _poll(
    name: str,
    healthy: Callable[[float], bool],
    timeout: float,
    alive: Callable[[], bool] | None = None,
) -> float:
    """Poll ``healthy`` until it passes; return the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        remaining = deadline - time.monotonic()
        if healthy(max(1.0, min(5.0, remaining))):
            return time.monotonic() - start
        if alive is not None and not alive():
            raise _failure(name, "its process exited during startup")
        if time.monotonic() >= deadline:
            raise _failure(name, f"it was not ready within {timeout:.0f} s")
        time.sleep(0.25)


def wait_kafka_ready(
    bootstrap: str | None = None, timeout: float = READY_TIMEOUT_S
) -> float:
    """Block until Kafka answers metadata requests; return the seconds waited."""
    servers = bootstrap or kafka_bootstrap()
    return _poll("kafka", lambda t: _kafka_healthy(servers, t), timeout)


def wait_mongo_ready(uri: str | None = None, timeout: float = READY_TIMEOUT_S) -> float:
    """Block until the MongoDB-wire server answers ``ping``; return seconds waited."""
    target = uri or mongodb_uri()
    return _poll("ferretdb", lambda t: _mongo_healthy(target, t), timeout)


def wait_ready(
    bootstrap: str | None = None,
    mongo_uri: str | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> None:
    """Block until both Kafka and the MongoDB-wire store answer, within ``timeout``.

    ``None`` means the address from the environment (or the local default).
    """
    deadline = time.monotonic() + timeout
    wait_kafka_ready(bootstrap, timeout)
    wait_mongo_ready(mongo_uri, max(1.0, deadline - time.monotonic()))


# --- processes --------------------------------------------------------------


@dataclass(frozen=True)
class _Service:
    name: ServiceName
    # A word that must appear in the process's command line, so a recycled pid
    # belonging to something else is not mistaken for the service.
    marker: str

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    def address(self) -> Address:
        return kafka_address() if self.name == "kafka" else mongodb_address()

    def healthy(self, timeout: float) -> bool:
        if self.name == "kafka":
            return _kafka_healthy(kafka_bootstrap(), timeout)
        return _mongo_healthy(mongodb_uri(), timeout)


_SPECS: dict[str, _Service] = {
    "kafka": _Service("kafka", "kafka.Kafka"),
    "ferretdb": _Service("ferretdb", "courier-ferretdb"),
}


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _failure(name: str, reason: str) -> ServiceError:
    log = LOG_DIR / f"{name}.log"
    return ServiceError(
        f"{name}: failed to become ready because {reason}; see {_rel(log)}.\n"
        f"--- last {LOG_TAIL_LINES} lines of {_rel(log)} ---\n{_log_tail(log)}"
    )


def _pid_alive(pid: int, marker: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc") / str(pid)
    if not proc.exists():
        return True  # no procfs: trust the signal check
    try:
        # A zombie still answers kill(0) until its parent reaps it.
        if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return marker in proc.joinpath("cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        return False


def _read_pid(spec: _Service) -> int | None:
    """Return the live pid from the pid file, removing a stale file."""
    try:
        pid = int(spec.pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _pid_alive(pid, spec.marker):
        return pid
    if spec.pid_file.exists():
        spec.pid_file.unlink(missing_ok=True)
        if pid is not None:
            print(f"{spec.name}: removed stale pid file (pid {pid} is gone)")
    return None


@contextlib.contextmanager
def _locked(spec: _Service) -> Iterator[None]:
    """Serialise up/down of one service across processes (e.g. test workers)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / f"{spec.name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _launch(spec: _Service, argv: Sequence[str]) -> int:
    """Start ``argv`` detached from this process; return its pid."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with spec.log_file.open("a", encoding="utf-8") as log:
        log.write(f"=== courier: starting {spec.name} at {stamp} ===\n")
    # The shell backgrounds the service and exits, so the service is not our
    # child: it outlives this process and never lingers as our zombie.
    launcher = subprocess.run(
        [
            "/bin/sh",
            "-c",
            '"$@" >>"$0" 2>&1 </dev/null & echo $!',
            spec.log_file,
            *argv,
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    pid = int(launcher.stdout.strip())
    spec.pid_file.write_text(f"{pid}\n")
    return pid


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise ServiceError("kafka: java is not on PATH; Kafka needs Java 17 or newer")
    return java


def _ensure_built(name: ServiceName, artifact: Path) -> None:
    if artifact.exists():
        return
    print(f"{name}: {_rel(artifact)} is missing, running deploy/local/build.sh {name}")
    if subprocess.run(["bash", str(BUILD_SH), name], check=False).returncode != 0:
        raise ServiceError(f"{name}: deploy/local/build.sh {name} failed")


def _controller_address(address: Address) -> Address:
    """The KRaft controller listens on the port after the client port."""
    return Address(address.bind_host, address.port + 1)


def _kafka_properties(address: Address) -> str:
    plain = f"{address.bind_host}:{address.port}"
    controller = str(_controller_address(address))
    lines = [
        "# Generated by deploy/local/services.py on every start; edit that file.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={controller}",
        f"listeners=PLAINTEXT://{plain},CONTROLLER://{controller}",
        f"advertised.listeners=PLAINTEXT://{plain},CONTROLLER://{controller}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        f"log.dirs={KAFKA_DATA}",
        "num.partitions=1",
        # As on a production cluster: a typo or a read must not make a topic
        # with the broker's defaults; `courier topics create` makes them.
        "auto.create.topics.enable=false",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    return "\n".join(lines) + "\n"


def _java_argv(main_class: str, *args: str, heap: str) -> list[str]:
    return [
        _java(),
        f"-Xmx{heap}",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
        "-cp",
        str(KAFKA_LIBS / "*"),
        main_class,
        *args,
    ]


def _kafka_argv(address: Address) -> list[str]:
    _ensure_built("kafka", KAFKA_LIBS / ".complete")
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    KAFKA_PROPERTIES.write_text(_kafka_properties(address), encoding="utf-8")
    if not (KAFKA_DATA / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        fmt = subprocess.run(
            _java_argv(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--ignore-formatted",
                "--cluster-id",
                cluster_id,
                "--config",
                str(KAFKA_PROPERTIES),
                heap="256m",
            ),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise ServiceError(
                f"kafka: formatting storage in {_rel(KAFKA_DATA)} failed "
                f"(exit {fmt.returncode}):\n{fmt.stdout}{fmt.stderr}"
            )
        print(f"kafka: formatted {_rel(KAFKA_DATA)} (cluster id {cluster_id})")
    return _java_argv("kafka.Kafka", str(KAFKA_PROPERTIES), heap="512m")


def _ferretdb_argv(address: Address) -> list[str]:
    _ensure_built("ferretdb", FERRETDB_BIN)
    return [
        str(FERRETDB_BIN),
        "-listen-addr",
        f"{address.bind_host}:{address.port}",
        "-state-dir",
        str(FERRETDB_DATA),
    ]


def _up_one(spec: _Service, timeout: float) -> None:
    address = spec.address()
    with _locked(spec):
        running = _read_pid(spec)
        if running is not None:
            if spec.healthy(STATUS_PROBE_TIMEOUT_S):
                print(f"{spec.name}: already running (pid {running})")
                return
            # Started by someone else a moment ago, or wedged: give it the
            # normal startup budget rather than starting a second copy.
            print(f"{spec.name}: pid {running} is running but not ready yet, waiting")
            took = _poll(
                spec.name, spec.healthy, timeout, lambda: _alive(spec, running)
            )
            print(f"{spec.name}: ready at {address} (pid {running}) after {took:.1f} s")
            return
        if not address.is_loopback:
            print(f"{spec.name}: {address} is not a loopback address, not managed here")
            took = _poll(spec.name, spec.healthy, timeout)
            print(f"{spec.name}: {address} answers ({took:.1f} s)")
            return
        if _port_open(address):
            if spec.healthy(STATUS_PROBE_TIMEOUT_S):
                print(
                    f"{spec.name}: {address} is already served by another process;"
                    " using it, not starting a second one"
                )
                return
            raise ServiceError(
                f"{spec.name}: {address} is taken by a process that does not answer"
                f" as {spec.name}; free the port or set the address variable"
            )
        if spec.name == "kafka" and _port_open(_controller_address(address)):
            raise ServiceError(
                f"kafka: controller port {_controller_address(address)} is taken by"
                " another process; free it or change COURIER_KAFKA_BOOTSTRAP_SERVERS"
            )
        argv = _kafka_argv(address) if spec.name == "kafka" else _ferretdb_argv(address)
        started = time.monotonic()
        pid = _launch(spec, argv)
        print(f"{spec.name}: started pid {pid}, log {_rel(spec.log_file)}")
        try:
            _poll(spec.name, spec.healthy, timeout, lambda: _alive(spec, pid))
        except ServiceError:
            # Leave no half-started copy behind for the next `up` to trip over.
            _terminate(spec, pid, STOP_TIMEOUT_S)
            raise
        took = time.monotonic() - started
        print(f"{spec.name}: ready at {address} (pid {pid}) after {took:.1f} s")


def _alive(spec: _Service, pid: int) -> bool:
    return _pid_alive(pid, spec.marker)


def _down_one(spec: _Service, timeout: float) -> None:
    with _locked(spec):
        pid = _read_pid(spec)
        if pid is None:
            print(f"{spec.name}: not running")
            return
        started = time.monotonic()
        _terminate(spec, pid, timeout)
        took = time.monotonic() - started
        print(f"{spec.name}: stopped pid {pid} in {took:.1f} s")


def _terminate(spec: _Service, pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(spec, pid, timeout):
        print(f"{spec.name}: pid {pid} ignored SIGTERM for {timeout:.0f} s, killing")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(spec, pid, 10.0):
            raise ServiceError(f"{spec.name}: pid {pid} survived SIGKILL")
    spec.pid_file.unlink(missing_ok=True)


def _wait_gone(spec: _Service, pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid, spec.marker):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _specs(services: Sequence[str]) -> list[_Service]:
    unknown = [s for s in services if s not in _SPECS]
    if unknown:
        raise ServiceError(
            f"unknown service(s) {', '.join(unknown)}; use kafka, ferretdb"
        )
    return [_SPECS[s] for s in services]


# --- public API -------------------------------------------------------------


def up(services: Sequence[str] = SERVICES, timeout: float = READY_TIMEOUT_S) -> None:
    """Start the services that are not running and wait until each is ready."""
    for spec in _specs(services):
        _up_one(spec, timeout)


def down(services: Sequence[str] = SERVICES, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop the services this module started (SIGTERM, then SIGKILL)."""
    for spec in _specs(services):
        _down_one(spec, timeout)


def status(services: Sequence[str] = SERVICES) -> int:
    """Print one line per service; return 0 if all are up and healthy, else 3."""
    ok = True
    for spec in _specs(services):
        address = spec.address()
        log = _rel(spec.log_file)
        pid = _read_pid(spec)
        healthy = spec.healthy(STATUS_PROBE_TIMEOUT_S)
        if pid is not None:
            state = "running" if healthy else "running but not answering"
            line = f"{spec.name}: {state} (pid {pid}) at {address}, log {log}"
        elif healthy:
            line = f"{spec.name}: running (not managed here) at {address}, log {log}"
        else:
            line = f"{spec.name}: stopped, address {address}, log {log}"
        print(line)
        ok = ok and healthy
    return 0 if ok else 3


def start(service: ServiceName, timeout: float = READY_TIMEOUT_S) -> None:
    """Start one service and wait until it is ready (no-op if it already is)."""
    up((service,), timeout)


def stop(service: ServiceName, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop one service (no-op if it is not running)."""
    down((service,), timeout)


def restart_kafka(timeout: float = READY_TIMEOUT_S) -> None:
    """Stop the broker and start it again on the same storage, waiting for ready."""
    stop("kafka")
    start("kafka", timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.services",
        description="Manage the local Kafka broker and FerretDB store.",
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("services", nargs="*", help="kafka, ferretdb (default both)")
    args = parser.parse_args(argv)
    selected: tuple[str, ...] = tuple(args.services) or SERVICES
    try:
        if args.command == "up":
            up(selected)
        elif args.command == "down":
            down(selected)
        else:
            return status(selected)
    except ServiceError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
