"""The real OpenID Connect provider for the tests (tools/oidc: panva's oidc-provider on
Node.js), and what a test needs to sign in through it: the roster's officers as accounts with
known passwords, and the submission of its login form."""

from __future__ import annotations

import base64
import hashlib
import html.parser
import secrets
import urllib.parse
from dataclasses import dataclass

import httpx

from services.review.roster import load_roster
from tools.devstack import ROOT
from tools.oidc import (
    AUDIENCE,
    Account,
    Client,
    RunningProvider,
    accounts_from_roster,
    portal_client,
    running_provider,
)

__all__ = [
    "AUDIENCE",
    "Account",
    "Client",
    "RunningProvider",
    "oidc_provider",
    "portal_client",
    "roster_accounts",
]


def password_of(officer_id: str) -> str:
    """The test password of an officer (each one different)."""
    return f"pw-{officer_id}-Mật-khẩu"


def roster_accounts() -> list[Account]:
    """Every officer of deploy/roster.yaml, with the password `password_of(id)`."""
    return accounts_from_roster(load_roster(ROOT / "deploy" / "roster.yaml"), password_of)


# The provider running on 127.0.0.1:`port` (a free port if 0) until the block ends; it yields
# the issuer, discovery_url and jwks_url (and the process, stopped on exit).
oidc_provider = running_provider


class _Forms(html.parser.HTMLParser):
    """The forms of a page: action and the inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((attributes.get("action", ""), {}))
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1][1][attributes["name"]] = attributes.get("value", "")


def page_form(page: httpx.Response, index: int = 0) -> tuple[str, dict[str, str]]:
    """The absolute action URL and the fields of the `index`-th form of an HTML page."""
    parser = _Forms()
    parser.feed(page.text)
    if len(parser.forms) <= index:
        raise AssertionError(f"no form on {page.url}: {page.text[:500]}")
    action, fields = parser.forms[index]
    return urllib.parse.urljoin(str(page.url), action), fields


async def submit_login(
    client: httpx.AsyncClient, login_page: httpx.Response, username: str, password: str
) -> httpx.Response:
    """Fill in and post the provider's login form, as an officer at a browser would."""
    action, fields = page_form(login_page)
    fields.update(username=username, password=password)
    return await client.post(action, data=fields)


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


async def follow_until(client: httpx.AsyncClient, answer: httpx.Response, prefix: str) -> str:
    """Follow the redirects of `answer` by hand until one leads to `prefix` (the client's
    redirect URI, which nothing serves here); that URL. Bounded: at most 10 hops."""
    for _ in range(10):
        location = answer.headers.get("location")
        if location is None:
            raise AssertionError(f"{answer.status_code} from {answer.url}: {answer.text[:500]}")
        url: str = urllib.parse.urljoin(str(answer.url), str(location))
        if url.startswith(prefix):
            return url
        answer = await client.get(url)
        if answer.status_code == 200:
            return str(answer.url)
    raise AssertionError("too many redirects")
