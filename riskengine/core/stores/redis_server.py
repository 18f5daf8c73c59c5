"""A throwaway ``redis-server`` on loopback: for tests, benchmarks and the example load test.

Real server, not a fake: the store contract suite and the fault tests need Redis's own
behaviour (scripts, TTLs, a dying process). Persistence is off (``--save '' --appendonly
no``) and the working directory is a temp dir, so nothing outlives the process.

>>> LocalRedisServer.available() in (True, False)
True
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PORTS_ENV = "RISKENGINE_FREE_PORTS"
"""``LOW-HIGH``: take free ports from this range only. The test suite gives each parallel
pytest worker its own range (tests/conftest.py), so one worker's servers and "nobody listens
here" ports never land on a port another worker picked a moment earlier."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (from ``$RISKENGINE_FREE_PORTS``
    when set, else one the kernel picks)."""
    span = os.environ.get(PORTS_ENV)
    if span:
        low, high = (int(x) for x in span.split("-"))
        for _ in range(1000):
            port = random.randint(low, high)  # noqa: S311 - spreading ports, not a secret
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise OSError(f"no free port in {PORTS_ENV}={span}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRedisServer:
    """Start with :meth:`start`, kill with :meth:`kill` (SIGKILL, like a crash), and
    :meth:`start` again on the same port to test recovery."""

    def __init__(self, port: int | None = None, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError("redis-server not found: run scripts/system-deps.sh")
        self.binary = found
        self.port = port or free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="riskengine-redis-")
        self.dir = Path(self._tmp.name)
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> LocalRedisServer:
        if self.running:
            return self
        log = (self.dir / "redis.log").open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited at start: {(self.dir / 'redis.log').read_text()[-2000:]}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout_s} s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as in a crash."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def stop(self) -> None:
        self.kill()
        self._tmp.cleanup()

    def __enter__(self) -> LocalRedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LocalRedisCluster:
    """A throwaway Redis Cluster on loopback: ``masters`` ``redis-server --cluster-enabled yes``
    processes, each with ``replicas_per_master`` replicas, joined by ``redis-cli --cluster
    create``. For tests and benchmarks.

    Append-only files on (``--appendonly yes``) and ``cluster-node-timeout`` short (default
    1000 ms) so a failover takes a second or two; ``cluster-require-full-coverage no`` so the
    slots of healthy masters keep answering while one master's replica is promoted (what
    docs/operations.md recommends for production).
    """

    def __init__(self, masters: int = 3, replicas_per_master: int = 1, node_timeout_ms: int = 1000) -> None:
        found = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if found is None or cli is None:
            raise FileNotFoundError("redis-server / redis-cli not found: run scripts/system-deps.sh")
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.binary, self.cli = found, cli
        self.masters, self.replicas_per_master = masters, replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self._tmp = tempfile.TemporaryDirectory(prefix="riskengine-redis-cluster-")
        self.dir = Path(self._tmp.name)
        self.ports = _cluster_ports(masters * (1 + replicas_per_master))
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def pid(self, port: int) -> int | None:
        proc = self._procs.get(port)
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start_node(self, port: int) -> None:
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        log = (node_dir / "redis.log").open("ab")
        self._procs[port] = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
             "--dir", str(node_dir), "--save", "", "--appendonly", "yes",
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms),
             "--cluster-require-full-coverage", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def cli_call(self, port: int, *args: str, timeout_s: float = 10.0) -> str:
        """``redis-cli -p PORT ARGS...``'s output (for cluster administration in tests)."""
        done = subprocess.run([self.cli, "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
        return done.stdout

    def start(self, timeout_s: float = 30.0) -> LocalRedisCluster:
        for port in self.ports:
            self._start_node(port)
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            while not _ping(port):
                if time.monotonic() > deadline or self._procs[port].poll() is not None:
                    log = (self.dir / str(port) / "redis.log").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"cluster node {port} did not start: {log}")
                time.sleep(0.02)
        created = subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout_s, check=False)
        if created.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}{created.stderr[-2000:]}")
        self.wait_ok(deadline - time.monotonic())
        return self

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every running node reports ``cluster_state:ok`` and knows every slot's master
        (after a failover, until the promoted replica is known to all)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = [p for p in self.ports if self.pid(p) is not None]
            if all("cluster_state:ok" in self.cli_call(p, "cluster", "info") for p in running) \
                    and all(self._covered(p) for p in running):
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis cluster not ok within {timeout_s} s")

    def _covered(self, port: int) -> bool:
        """Every slot has a live master in this node's view."""
        masters = self.master_ports(port)
        return bool(masters) and all(self.pid(p) is not None for p in masters.values())

    def master_ports(self, port: int | None = None) -> dict[tuple[int, int], int]:
        """Slot range → port of its master, as node ``port`` (default: any running node) sees it."""
        port = port or next(p for p in self.ports if self.pid(p) is not None)
        out: dict[tuple[int, int], int] = {}
        for line in self.cli_call(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) < 8 or "master" not in fields[2] or "fail" in fields[2]:
                continue
            node_port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for spec in fields[8:]:
                if spec.startswith("["):
                    continue  # a slot being migrated
                lo, _, hi = spec.partition("-")
                out[(int(lo), int(hi or lo))] = node_port
        return out

    def replica_of(self, master_port: int) -> list[int]:
        """Ports of the replicas of the master on ``master_port``."""
        node_id = self.cli_call(master_port, "cluster", "myid").strip()
        out = []
        for line in self.cli_call(master_port, "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[3] == node_id:
                out.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return out

    def kill(self, port: int) -> None:
        """SIGKILL one node, as in a crash."""
        proc = self._procs.get(port)
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        for port in list(self._procs):
            self.kill(port)
        self._procs.clear()
        self._tmp.cleanup()

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _cluster_ports(n: int) -> list[int]:
    """``n`` distinct free ports whose cluster-bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port > 55_000 or port in ports or port + 10_000 in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
