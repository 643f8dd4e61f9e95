"""`python -m services.review` runs review; `python -m services.review token OFFICER_ID`
prints a bearer token for a rostered officer."""

from __future__ import annotations

import argparse
import sys

from services.review.app import create_app
from services.review.auth import issue_token
from services.review.roster import load_roster
from services.review.settings import ReviewSettings
from shared.serve import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.review")
    sub = parser.add_subparsers(dest="command")
    token = sub.add_parser("token", help="print a bearer token for a rostered officer")
    token.add_argument("officer_id")
    args = parser.parse_args(argv)
    settings = ReviewSettings()
    if args.command == "token":
        officer = load_roster(settings.roster_file).officer(args.officer_id)
        if officer is None:
            print(f"no officer {args.officer_id!r} in {settings.roster_file}", file=sys.stderr)
            return 2
        print(issue_token(officer, settings))
        return 0
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
