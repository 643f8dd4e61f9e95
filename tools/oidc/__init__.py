"""Starts the OpenID Connect provider of the tests and `make run` (tools/oidc/provider.mjs:
panva's oidc-provider on Node.js) with the roster's officers as accounts and the portal as
its client.

    python -m tools.oidc --port 9400 --portal-url http://127.0.0.1:8000

Issuer `http://127.0.0.1:<port>`; access tokens are RS256 JWTs for the audience `motcua`
carrying `sub`, `role` and `unit`, which the services accept with MOTCUA_JWT_ALGORITHM=RS256,
MOTCUA_JWT_JWKS_URL=<issuer>/jwks, MOTCUA_JWT_ISSUER=<issuer>, MOTCUA_JWT_AUDIENCE=motcua.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from services.review.roster import Roster
from tools.devstack import ROOT, free_port

PROVIDER_SCRIPT = ROOT / "tools" / "oidc" / "provider.mjs"
AUDIENCE = "motcua"
RESOURCE = "urn:motcua"
CALLBACK_PATH = "/signin/callback"
SIGNED_OUT_PATH = "/signin/signed-out"


@dataclass(frozen=True)
class Account:
    """An officer who can sign in at the provider."""

    id: str
    password: str
    name: str
    role: str
    unit: str


@dataclass(frozen=True)
class Client:
    """A relying party: confidential (client_secret_basic) when it has a secret, else public."""

    client_id: str
    redirect_uris: Sequence[str]
    post_logout_redirect_uris: Sequence[str] = ()
    client_secret: str = ""
    client_name: str = "Motcua — bàn làm việc một cửa"

    def metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "client_id": self.client_id,
            "client_name": self.client_name,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "token_endpoint_auth_method": "client_secret_basic" if self.client_secret else "none",
        }
        if self.client_secret:
            data["client_secret"] = self.client_secret
        return data


def portal_client(portal_url: str, *, client_id: str = "motcua-portal", secret: str = "") -> Client:
    """The portal as a client of the provider, redirected back to its sign-in routes."""
    base = portal_url.rstrip("/")
    return Client(
        client_id,
        redirect_uris=[base + CALLBACK_PATH],
        post_logout_redirect_uris=[base + SIGNED_OUT_PATH],
        client_secret=secret,
    )


def accounts_from_roster(roster: Roster, password: Callable[[str], str]) -> list[Account]:
    """Each active officer of the roster, with the password `password(officer_id)`."""
    return [
        Account(o.id, password(o.id), o.name, o.role, o.unit) for o in roster.officers if o.active
    ]


def rsa_jwk(kid: str = "") -> dict[str, Any]:
    """A new private RSA signing key as a JWK (for --keys: key rotation)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid or f"motcua-{uuid.uuid4().hex[:12]}", "use": "sig", "alg": "RS256"}


@dataclass
class RunningProvider:
    """A provider process and where it answers."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    accounts: list[Account] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _discovery_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return int(answer.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def running_provider(
    accounts: Sequence[Account],
    clients: Sequence[Client],
    *,
    port: int = 0,
    keys: Sequence[dict[str, Any]] | None = None,
    access_token_ttl: int = 900,
    startup_timeout: float = 90.0,  # a loaded CI machine starts Node slowly
) -> Iterator[RunningProvider]:
    """Write the accounts, clients (and keys) to a temporary folder, start the provider on
    `port` (a free one if 0), wait until discovery answers, and stop it on exit."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: the OIDC provider needs Node.js 20+")
    with tempfile.TemporaryDirectory(prefix="motcua-oidc-") as tmp:
        folder = Path(tmp)
        files: dict[str, Any] = {
            "accounts": [a.__dict__ for a in accounts],
            "clients": [c.metadata() for c in clients],
        }
        if keys is not None:
            files["keys"] = {"keys": list(keys)}
        options = ["--access-token-ttl", str(access_token_ttl)]
        for name, content in files.items():
            (folder / f"{name}.json").write_text(json.dumps(content, ensure_ascii=False), "utf-8")
            options += [f"--{name}", str(folder / f"{name}.json")]
        # A provider that neither answered nor exited in `startup_timeout` is started once more
        # (on a new port when it chose its own): CI once saw one stay silent for 90 s.
        attempts = 2 if port == 0 else 1
        failures: list[str] = []
        for attempt in range(1, attempts + 1):
            chosen = port or free_port()
            log_path = folder / f"provider-{attempt}.log"
            command = [node, str(PROVIDER_SCRIPT), "--port", str(chosen), *options]
            with log_path.open("wb") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            running = RunningProvider(chosen, process, log_path, list(accounts))
            try:
                if _started(running, startup_timeout):
                    yield running
                    return
            finally:
                _stop(process)
            failures.append(f"attempt {attempt}, port {chosen}:\n{running.log()[-3000:]}")
        raise TimeoutError("the OIDC provider did not answer:\n" + "\n".join(failures))


def _started(running: RunningProvider, timeout: float) -> bool:
    """Wait until `running` answers discovery (True) or `timeout` passes (False); raise if it
    exited."""
    deadline = time.monotonic() + timeout
    while not _discovery_answers(running.discovery_url):
        if running.process.poll() is not None:
            raise RuntimeError(f"the OIDC provider exited:\n{running.log()[-3000:]}")
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
