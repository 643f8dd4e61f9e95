"""Starts Motcua's infrastructure and services on this machine, without Docker.

    python -m tools.devstack run               RabbitMQ, the database, a mail sink and the four
                                               services; prints their URLs; Ctrl-C stops all.
    python -m tools.devstack exec -- CMD ...   RabbitMQ and the database on test ports, CMD run
                                               with MOTCUA_TEST_* pointing at them, then stopped.

RabbitMQ runs as a private node (its own name, ports and data under .run/); the MongoDB-wire
server is MONGODB_URL if set, else `mongod` on PATH, else the embedded server MOTCUA_DATABASE
names (ferretdb: FerretDB on SQLite; nx-27017: nx-27017 on SQLite). Standard
library only, so it runs before the project's environment exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".run"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
FERRETDB_VERSION = "v1.24.2"
TOOLS_DIR = Path(os.environ.get("MOTCUA_TOOLS_DIR", Path.home() / ".cache" / "motcua"))
FERRETDB_BIN = TOOLS_DIR / "bin" / f"ferretdb-{FERRETDB_VERSION}"
NX_VERSION = "0.8.1"
NX_DIR = TOOLS_DIR / f"nx-27017-{NX_VERSION}"
NX_BIN = NX_DIR / "bin" / "nx-27017"
# The embedded MongoDB-wire server (README: "Choosing the embedded database").
EMBEDDED_DATABASES = ("ferretdb", "nx-27017")
DEFAULT_DATABASE = "nx-27017"
SERVICES = {"intake": 8001, "review": 8002, "notify": 8003, "audit": 8004, "portal": 8000}
"""Started in this order: the portal last, as it answers ready once the four others do."""
BROKER_DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
BROKER_SERVICES = ("intake", "review", "notify", "audit")
"""The services with a broker user of their own (the portal uses no broker)."""


def broker_user(service: str) -> str:
    return f"motcua-{service}"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def broker_definitions(passwords: dict[str, str]) -> dict[str, object]:
    """deploy/rabbitmq/definitions.json with each user's hash computed from `passwords` (user →
    password); a user without a password keeps an empty hash (no password sign-in)."""
    definitions: dict[str, object] = json.loads(BROKER_DEFINITIONS.read_text())
    users = definitions["users"]
    assert isinstance(users, list)
    for user in users:
        if user["name"] in passwords:
            user["password_hash"] = password_hash(passwords[user["name"]])
    return definitions


def service_amqp_url(url: str, user: str, password: str) -> str:
    """`url` signed in as `user` (same host, port, vhost and query)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    creds = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{creds}@{host}"))


def log(message: str) -> None:
    print(f"[devstack] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for(
    check: object,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    logfile: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        if proc is not None and proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-3000:] if logfile else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}\n{tail}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class RabbitMQ:
    """A private RabbitMQ node with the management plugin, as root, data under `home`."""

    name: str
    home: Path
    port: int
    management_port: int
    dist_port: int = 0  # Erlang distribution; default: AMQP port + 20000
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/api"

    def env(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": f"{self.name}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port or self.port + 20000),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.home / "rabbitmq.pid"),
        }

    def start(self, timeout: float = 90) -> None:
        if not RABBITMQ_SERVER.exists():
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        for sub in ("mnesia", "log"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        (self.home / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            "loopback_users = none\n"
        )
        logfile = self.home / "server.out"
        self.proc = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            cwd=self.home,
            env={**os.environ, **self.env()},
            stdout=logfile.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self.api_ready, f"RabbitMQ {self.name}", timeout, self.proc, logfile)

    def api_ready(self) -> bool:
        try:
            self.request("GET", "/overview")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.api + path, data=body, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return bytes(resp.read())

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30)
            self.proc = None

    def load_definitions(self) -> dict[str, str]:
        """Import the services' users with fresh random passwords; returns user → password."""
        passwords = {broker_user(s): secrets.token_urlsafe(18) for s in BROKER_SERVICES}
        self.request("POST", "/definitions", json.dumps(broker_definitions(passwords)).encode())
        return passwords

    def grant_service(self, service: str, vhost: str) -> None:
        """Give `service`'s user on `vhost` the permissions the definitions give it on `/`."""
        definitions = json.loads(BROKER_DEFINITIONS.read_text())
        user = broker_user(service)
        (grant,) = [p for p in definitions["permissions"] if p["user"] == user]
        body = {k: grant[k] for k in ("configure", "write", "read")}
        quoted = urllib.parse.quote(vhost, safe="")
        self.request("PUT", f"/permissions/{quoted}/{user}", json.dumps(body).encode())


@dataclass
class MongoWire:
    """MONGODB_URL if set, else `mongod` on PATH, else the embedded server; data under `home`."""

    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    kind: str = ""

    def start(self, timeout: float = 60) -> None:
        external = os.environ.get("MONGODB_URL")
        if external:
            self.url, self.kind = external, "external (MONGODB_URL)"
            return
        self.home.mkdir(parents=True, exist_ok=True)
        logfile = self.home / "server.out"
        mongod = shutil.which("mongod")
        chosen = embedded_database()
        if mongod:
            (self.home / "db").mkdir(exist_ok=True)
            cmd = [
                mongod,
                "--dbpath",
                str(self.home / "db"),
                "--bind_ip",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
            self.kind = "mongod"
        else:
            cmd, self.kind = embedded_command(chosen, self.home, self.port)
        self.proc = subprocess.Popen(
            cmd,
            stdout=logfile.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"mongodb://127.0.0.1:{self.port}/"
        wait_for(lambda: port_open(self.port), self.kind, timeout, self.proc, logfile)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def embedded_command(kind: str, home: Path, port: int) -> tuple[list[str], str]:
    """The command line that serves embedded database `kind` on `port`, data under `home`."""
    if kind == "nx-27017":
        (home / "nx").mkdir(parents=True, exist_ok=True)
        cmd = [
            str(tool_binary(NX_BIN, f"nx-27017 {NX_VERSION}")),
            f"--data-dir={home / 'nx'}",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--log-file={home / 'nx.log'}",
            f"--pid-file={home / 'nx.pid'}",
        ]
        return cmd, f"nx-27017 {NX_VERSION} (SQLite, one file per database)"
    binary = tool_binary(FERRETDB_BIN, f"FerretDB {FERRETDB_VERSION}")
    cmd = [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{home}/",
        f"--listen-addr=127.0.0.1:{port}",
        "--telemetry=disable",
        f"--debug-addr=127.0.0.1:{free_port()}",
        "--log-level=warn",
        f"--state-dir={home}",
    ]
    return cmd, f"FerretDB {FERRETDB_VERSION} (SQLite)"


def embedded_database() -> str:
    """Which embedded server to start: MOTCUA_DATABASE, else the default chosen by measurement."""
    chosen = os.environ.get("MOTCUA_DATABASE", "") or DEFAULT_DATABASE
    if chosen not in EMBEDDED_DATABASES:
        raise RuntimeError(f"MOTCUA_DATABASE={chosen!r}: choose one of {EMBEDDED_DATABASES}")
    return chosen


def tool_binary(path: Path, what: str) -> Path:
    """A server `make deps` installed (kept in ~/.cache/motcua, reused across clones)."""
    if path.exists() and (path != NX_BIN or (NX_DIR / ".installed").exists()):
        return path
    raise RuntimeError(f"{path} is missing: run `make deps` (it installs {what})")


@dataclass
class Stack:
    """Infrastructure for one purpose ('run' or 'test'), with its own ports and data."""

    purpose: str
    amqp_port: int
    mongo_port: int
    fresh: bool = False
    rabbitmq: RabbitMQ | None = None
    mongo: MongoWire | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    broker_passwords: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        # A test stack's data is its own (two runs in one clone must not share a folder) and
        # goes when it stops; `make run` keeps its data between runs.
        return RUN_DIR / (self.purpose if not self.fresh else f"{self.purpose}-{os.getpid()}")

    def start(self) -> None:
        if self.fresh and self.home.exists():
            shutil.rmtree(self.home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.rabbitmq = RabbitMQ(
            f"motcua-{self.purpose}-{self.amqp_port}",
            self.home / "rabbitmq",
            self.amqp_port,
            self.amqp_port + 10000 if self.purpose == "run" else free_port(),
            dist_port=0 if self.purpose == "run" else free_port(),
        )
        self.mongo = MongoWire(self.home / "mongo", self.mongo_port)
        started = time.monotonic()
        self.mongo.start()
        log(f"database: {self.mongo.kind} at {self.mongo.url}")
        self.rabbitmq.start()
        self.broker_passwords = self.rabbitmq.load_definitions()
        log(
            f"RabbitMQ at {self.rabbitmq.url} (management {self.rabbitmq.api}) "
            f"in {time.monotonic() - started:.1f}s"
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        if self.rabbitmq:
            self.rabbitmq.stop()
        if self.mongo:
            self.mongo.stop()
        if self.fresh:
            shutil.rmtree(self.home, ignore_errors=True)

    def env(self) -> dict[str, str]:
        assert self.rabbitmq and self.mongo
        return {
            "MOTCUA_TEST_AMQP_URL": self.rabbitmq.url,
            "MOTCUA_TEST_RABBITMQ_API": self.rabbitmq.api,
            "MOTCUA_TEST_MONGODB_URL": self.mongo.url,
            # Each service's own broker user (deploy/rabbitmq/definitions.json), this run's.
            "MOTCUA_TEST_BROKER_PASSWORDS": json.dumps(self.broker_passwords),
        }

    def service_env(self, service: str) -> dict[str, str]:
        """`service`'s own broker login (none for the portal)."""
        assert self.rabbitmq
        if service not in BROKER_SERVICES:
            return {}
        user = broker_user(service)
        url = service_amqp_url(self.rabbitmq.url, user, self.broker_passwords[user])
        return {"MOTCUA_AMQP_URL": url}


@contextlib.contextmanager
def stack(purpose: str, amqp_port: int, mongo_port: int, *, fresh: bool) -> Iterator[Stack]:
    s = Stack(purpose, amqp_port, mongo_port, fresh=fresh)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def run_services(s: Stack) -> None:
    """Start the mail sink and the four services; block until Ctrl-C."""
    assert s.rabbitmq and s.mongo
    logs = s.home / "logs"
    logs.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "MOTCUA_AMQP_URL": s.rabbitmq.url,
        "MOTCUA_MONGODB_URL": s.mongo.url,
        "MOTCUA_NOTIFY_SMTP_PORT": os.environ.get("MOTCUA_NOTIFY_SMTP_PORT", "1025"),
        # `make run` is development: the console offers the roster's officers to sign in as.
        "MOTCUA_PORTAL_DEVELOPMENT_SIGNIN": os.environ.get(
            "MOTCUA_PORTAL_DEVELOPMENT_SIGNIN", "true"
        ),
    }
    smtp_port = int(env["MOTCUA_NOTIFY_SMTP_PORT"])
    mail_dir = s.home / "mail"
    commands = {"mailsink": [sys.executable, "-m", "tools.mailsink", str(smtp_port), str(mail_dir)]}
    for name in SERVICES:
        commands[name] = [sys.executable, "-m", f"services.{name}"]
    for name, cmd in commands.items():
        s.procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**env, **s.service_env(name)},
                stdout=(logs / f"{name}.log").open("ab"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    for (name, port), proc in zip(SERVICES.items(), s.procs[1:], strict=True):
        wait_for(
            lambda p=port: _http_ok(f"http://127.0.0.1:{p}/readyz"),
            name,
            60,
            proc,
            logs / f"{name}.log",
        )
    print("\nMotcua is running:")
    for name, port in SERVICES.items():
        if name == "portal":
            print(f"  {name:<7} http://127.0.0.1:{port}   (the officer console)")
        else:
            print(f"  {name:<7} http://127.0.0.1:{port}   (API docs: http://127.0.0.1:{port}/docs)")
    print(f"  RabbitMQ management  http://127.0.0.1:{s.rabbitmq.management_port}  (guest/guest)")
    print(f"  database             {s.mongo.url}  [{s.mongo.kind}]")
    print(f"  e-mails to citizens  saved under {mail_dir} (SMTP sink on 127.0.0.1:{smtp_port})")
    print(f"  logs                 {logs}")
    print("Officer token: .venv/bin/python -m services.review token cb-badinh-01")
    print("Press Ctrl-C to stop.", flush=True)
    while all(p.poll() is None for p in s.procs):
        time.sleep(0.5)
    dead = [n for n, p in zip(commands, s.procs, strict=True) if p.poll() is not None]
    raise RuntimeError(f"stopped: {', '.join(dead)} exited (see {logs})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole of Motcua until Ctrl-C")
    ex = sub.add_parser("exec", help="run a command with test infrastructure up")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicitly, since a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        if args.command == "run":
            try:
                with stack("run", 5672, 27017, fresh=False) as s:
                    run_services(s)
            except KeyboardInterrupt:
                log("stopped everything it started")
                return 0
        cmd = [c for c in args.cmd if c != "--"] if args.cmd[:1] == ["--"] else args.cmd
        # Test infrastructure on free ports, so it never collides with `make run` or another run.
        with stack("test", free_port(), free_port(), fresh=True) as s:
            return subprocess.call(cmd, env={**os.environ, **s.env()}, cwd=ROOT)
    except KeyboardInterrupt:
        log("stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
