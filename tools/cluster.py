"""A RabbitMQ cluster of three nodes on this one machine, for the fault runs (`make chaos`).

    python -m tools.cluster run [--nodes 3]    start the cluster, print its URLs; Ctrl-C stops it

Each node is a private RabbitMQ node as tools.devstack starts one (its own name, AMQP,
management and distribution ports, data under `home`), all sharing one Erlang cookie of their
own (a `.erlang.cookie` in the cluster's folder, given to the nodes and to rabbitmqctl as their
HOME). They boot at once and form the cluster as they boot (classic peer discovery: every
node's `advanced.config` names the others); a node that booted alone is joined to the first
with rabbitmqctl. Quorum queues declared once the cluster is formed
get a replica on every node: RabbitMQ 3.10's default initial group size (`quorum_cluster_size`)
is 3, so no `x-quorum-initial-group-size` or policy is needed; `replicas()` shows it.
Standard library only, like tools.devstack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tools.devstack import RUN_DIR, RabbitMQ, free_port, log

RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


@dataclass
class ClusterNode(RabbitMQ):
    """A devstack RabbitMQ node whose Erlang cookie is the cluster's (HOME = `cookie_home`)."""

    cookie_home: Path = Path("/nonexistent")

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    peers: tuple[str, ...] = ()

    def env(self) -> dict[str, str]:
        extra = {"HOME": str(self.cookie_home)}
        if self.peers:
            # Classic peer discovery: a fresh node joins the others as it boots.
            advanced = self.home / "advanced.config"
            self.home.mkdir(parents=True, exist_ok=True)
            nodes = ", ".join(f"'{p}'" for p in self.peers)
            advanced.write_text(f"[{{rabbit, [{{cluster_nodes, {{[{nodes}], disc}}}}]}}].\n")
            extra["RABBITMQ_ADVANCED_CONFIG_FILE"] = str(advanced)
        return {**super().env(), **extra}

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """rabbitmqctl against this node, with the cluster's cookie."""
        done = subprocess.run(
            [str(RABBITMQCTL), "-n", self.node, *args],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.node}: {done.stderr[-2000:]}"
            )
        return done.stdout

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Cluster:
    """`size` RabbitMQ nodes clustered together under `home`."""

    home: Path
    size: int = 3
    nodes: list[ClusterNode] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        tag = free_port()
        for i in range(self.size):
            port = free_port()
            self.nodes.append(
                ClusterNode(
                    f"motcua-chaos-{tag}-{chr(ord('a') + i)}",
                    self.home / f"node{i + 1}",
                    port,
                    free_port(),
                    dist_port=free_port(),
                    cookie_home=self.home,
                )
            )
        peers = tuple(n.node for n in self.nodes)
        for n in self.nodes:
            n.peers = peers
        started = time.monotonic()
        first, *others = self.nodes
        # The nodes boot at once (most of the time), then the others join the first.
        booting = [threading.Thread(target=n.start) for n in self.nodes]
        for thread in booting:
            thread.start()
        for thread in booting:
            thread.join()
        if not all(n.running() for n in self.nodes):
            raise RuntimeError("a node of the cluster did not start (see its server.out)")
        log(f"nodes booted in {time.monotonic() - started:.1f}s")
        deadline = time.monotonic() + 20
        while len(self.running_members()) != self.size and time.monotonic() < deadline:
            time.sleep(0.5)
        for node in others:  # booted on its own (discovery raced): joined as an operator would
            if node.node not in self.running_members():
                node.ctl("stop_app")
                node.ctl("reset")
                node.ctl("join_cluster", first.node)
                node.ctl("start_app")
        members = self.running_members()
        if len(members) != self.size:
            raise RuntimeError(f"the cluster has {members}, not {self.size} nodes")
        self.passwords = first.load_definitions()
        log(
            f"RabbitMQ cluster of {self.size} ({', '.join(n.node for n in self.nodes)}) "
            f"in {time.monotonic() - started:.1f}s: {self.url}"
        )

    def running_members(self) -> list[str]:
        node = next(n for n in self.nodes if n.running())
        status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
        return sorted(status.get("running_nodes", []))

    @property
    def url(self) -> str:
        """Every node's guest URL, comma-separated (MOTCUA_AMQP_URL's failover form)."""
        return ",".join(n.url for n in self.nodes)

    def vhost_url(self, vhost: str, user: str = "guest", password: str = "guest") -> str:
        """Every node's URL on `vhost`, signed in as `user`."""
        quoted = urllib.parse.quote(vhost, safe="")
        creds = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        return ",".join(f"amqp://{creds}@127.0.0.1:{n.port}/{quoted}" for n in self.nodes)

    def api_node(self) -> ClusterNode:
        """A running node, to ask the management API (any node answers for the cluster)."""
        for node in self.nodes:
            if node.running() and node.api_ready():
                return node
        raise RuntimeError("no node of the cluster answers")

    def queues(self, vhost: str) -> list[dict[str, object]]:
        quoted = urllib.parse.quote(vhost, safe="")
        body = self.api_node().request(
            "GET",
            f"/queues/{quoted}?columns=name,leader,members,type,messages_ready,messages_unacknowledged,consumers",
        )
        queues: list[dict[str, object]] = json.loads(body)
        return queues

    def replicas(self, vhost: str) -> dict[str, int]:
        """Quorum queue → how many nodes hold a replica of it."""
        return {
            str(q["name"]): len(q.get("members") or [])  # type: ignore[arg-type]
            for q in self.queues(vhost)
            if q.get("type") == "quorum"
        }

    def leading_node(self, vhost: str, prefix: str = "") -> ClusterNode:
        """The node that leads most of `vhost`'s quorum queues (named `prefix`...)."""
        leaders: dict[str, int] = {}
        for queue in self.queues(vhost):
            if queue.get("type") == "quorum" and str(queue["name"]).startswith(prefix):
                leader = str(queue.get("leader", ""))
                leaders[leader] = leaders.get(leader, 0) + 1
        if not leaders:
            raise RuntimeError(f"no quorum queue on {vhost!r}")
        busiest = max(leaders, key=lambda n: leaders[n])
        return next(n for n in self.nodes if n.node == busiest)

    def add_vhost(self, vhost: str) -> None:
        quoted = urllib.parse.quote(vhost, safe="")
        node = self.api_node()
        node.request("PUT", f"/vhosts/{quoted}")
        body = json.dumps({"configure": ".*", "write": ".*", "read": ".*"}).encode()
        node.request("PUT", f"/permissions/{quoted}/guest", body)

    def stop_node(self, node: ClusterNode) -> None:
        node.stop()

    def start_node(self, node: ClusterNode, timeout: float = 120) -> None:
        """Start a member again: it rejoins the cluster from its own data."""
        node.start(timeout)

    def stop(self) -> None:
        stopping = [threading.Thread(target=n.stop) for n in self.nodes]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


@contextlib.contextmanager
def cluster(home: Path | None = None, size: int = 3) -> Iterator[Cluster]:
    """A fresh cluster under `home` (default: .run/cluster-<pid>), removed when it stops."""
    where = home or RUN_DIR / f"cluster-{os.getpid()}"
    shutil.rmtree(where, ignore_errors=True)
    c = Cluster(where, size)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(where, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a cluster until Ctrl-C")
    run.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        with cluster(size=args.nodes) as c:
            print(f"MOTCUA_AMQP_URL={c.url}")
            for node in c.nodes:
                print(f"  {node.node}  amqp {node.port}  management {node.api}")
            print("Press Ctrl-C to stop.", flush=True)
            while all(n.running() for n in c.nodes):
                time.sleep(0.5)
            raise RuntimeError("a node of the cluster exited")
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
