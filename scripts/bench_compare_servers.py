"""scripts/bench_compare.py's servers: installing what is missing, starting and stopping the
Raftka, NATS JetStream and Redis processes, and preparing their topics and streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- setup


def setup(python: str = sys.executable) -> None:
    """Install what is missing: Debian's nats-server and redis-server, the bench extra."""
    missing = [p for p in ("nats-server", "redis-server") if shutil.which(p) is None]
    if missing:
        if os.geteuid() != 0:
            raise SystemExit(f"missing {', '.join(missing)}: sudo apt-get install -y "
                             f"{' '.join(missing)} (or run this as root)")  # fmt: skip
        print(f"setup: apt-get install -y {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "install", "-y", *missing], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        import hiredis  # noqa: F401
        import nats  # noqa: F401
        import redis  # noqa: F401

        if not (Path(python).parent / "py-spy").exists():
            raise ImportError("py-spy")
    except ImportError:
        print("setup: pip install -e .[bench]", flush=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[bench]"],
                       check=True)  # fmt: skip


# ----------------------------------------------------------------------------- processes


def free_ports(count: int) -> list[int]:
    from raftka.ops.local_cluster import free_port

    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


class Servers:
    """Every server process this script started, by name, so all can be stopped together."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.raftka: Any = None  # LocalCluster
        self.nats_urls = ""
        self.redis_port = 0

    def start_nats(self) -> None:
        client_ports, route_ports = free_ports(3), free_ports(3)
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
        for i in range(3):
            directory = self.base / f"nats-{i}"
            directory.mkdir(parents=True)
            config = directory / "nats.conf"
            config.write_text(
                f'server_name: "n{i}"\nlisten: "127.0.0.1:{client_ports[i]}"\n'
                f'jetstream {{ store_dir: "{directory / "js"}" }}\n'
                f'cluster {{ name: "bench", listen: "127.0.0.1:{route_ports[i]}", '
                f"routes: [{routes}] }}\n"
            )
            self._spawn(f"nats-{i}", ["nats-server", "-c", str(config)], directory)
        self.nats_urls = ",".join(f"nats://127.0.0.1:{p}" for p in client_ports)

    def start_redis(self) -> None:
        (port,) = free_ports(1)
        directory = self.base / "redis"
        directory.mkdir(parents=True)
        self._spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--dir", str(directory), "--appendonly", "yes",
                              "--appendfsync", "everysec", "--save", ""], directory)  # fmt: skip
        self.redis_port = port

    def start_raftka(self, combined: bool = False) -> None:
        """3 controllers and 3 brokers, or (``combined``) 3 nodes running both roles."""
        from raftka.ops.local_cluster import LocalCluster

        self.raftka = LocalCluster(self.base / "raftka", controllers=3,
                                   brokers=0 if combined else 3, combined=combined,
                                   log_level="warning")  # fmt: skip
        self.raftka.prepare()
        self.raftka.start()

    def _spawn(self, name: str, command: list[str], directory: Path) -> None:
        log = open(directory / "server.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL,
                                                start_new_session=True)  # fmt: skip
        finally:
            log.close()

    def pids(self, system: str) -> dict[str, int]:
        if system == "raftka":
            nodes = {**self.raftka.nodes, **self.raftka.brokers}
            return {f"raftka-{n.role}-{i}": n.process.pid for i, n in nodes.items()}
        return {n: p.pid for n, p in self.procs.items() if n.startswith(system)}

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.raftka is not None:
            self.raftka.stop_all()


# ----------------------------------------------------------------------------- prepare


async def wait_raftka(servers: Servers, topics: dict[str, tuple[int, dict[str, str]]]) -> None:
    """Wait for every broker to be unfenced, then create ``topics`` (name -> RF, configs)."""
    from raftka.client.admin import AsyncAdmin

    cluster = servers.raftka
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the Raftka brokers did not all register within 60 s")
        for name, (rf, configs) in topics.items():
            await admin.create_topic(name, 3, rf, configs=configs)


async def nats_streams(urls: str, streams: Sequence[str]) -> None:
    import nats
    from nats.js.api import StorageType, StreamConfig

    deadline = time.monotonic() + 60
    while True:
        try:
            nc = await nats.connect(urls.split(","))
            js = nc.jetstream()
            try:
                for name in streams:
                    await js.add_stream(StreamConfig(name=name, subjects=[name],
                                                     storage=StorageType.FILE,
                                                     num_replicas=3))  # fmt: skip
            finally:
                await nc.close()
            return
        except Exception as e:  # the JetStream cluster needs a few seconds to elect a leader
            if time.monotonic() > deadline:
                raise RuntimeError(f"NATS JetStream not ready within 60 s: {e!r}") from e
            await asyncio.sleep(0.5)
