"""`python -m tools.oidc`: the development OpenID Connect provider, with every officer of the
roster signing in with the same development password, until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from services.review.roster import load_roster
from tools.devstack import ROOT
from tools.oidc import accounts_from_roster, portal_client, running_provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.oidc", description=__doc__)
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--roster", type=Path, default=ROOT / "deploy" / "roster.yaml")
    parser.add_argument("--password", default="motcua-dev", help="every officer's password")
    parser.add_argument("--portal-url", default="http://127.0.0.1:8000")
    parser.add_argument("--client-id", default="motcua-portal")
    parser.add_argument("--client-secret", default="motcua-portal-dev-secret")
    parser.add_argument("--access-token-ttl", type=int, default=900)
    args = parser.parse_args(argv)
    accounts = accounts_from_roster(load_roster(args.roster), lambda _officer: args.password)
    client = portal_client(args.portal_url, client_id=args.client_id, secret=args.client_secret)
    with running_provider(
        accounts, [client], port=args.port, access_token_ttl=args.access_token_ttl
    ) as provider:
        print(
            f"OIDC provider {provider.issuer} ({len(accounts)} officers, password "
            f"{args.password!r}); discovery {provider.discovery_url}",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            provider.process.wait()
        if provider.process.returncode not in (None, 0):
            print(provider.log()[-3000:], file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
