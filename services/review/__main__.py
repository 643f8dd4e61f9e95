"""`python -m services.review` runs review; `python -m services.review token OFFICER_ID`
prints an HS256 bearer token for an officer of the directory (the database, else the roster
file when the database cannot be reached)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pymongo import AsyncMongoClient

from services.review.app import create_app
from services.review.auth import issue_token
from services.review.directory import Directory
from services.review.roster import Officer, load_roster
from services.review.settings import ReviewSettings
from shared.production import refuse_development_defaults
from shared.serve import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.review")
    sub = parser.add_subparsers(dest="command")
    token = sub.add_parser("token", help="print a bearer token for a rostered officer")
    token.add_argument("officer_id")
    args = parser.parse_args(argv)
    settings = ReviewSettings()
    if args.command == "token":
        if settings.shared.jwt_algorithm != "HS256":
            print("tokens come from the identity provider (RS256)", file=sys.stderr)
            return 2
        officer = asyncio.run(_find(settings, args.officer_id))
        if officer is None or not officer.active:
            print(f"no active officer {args.officer_id!r}", file=sys.stderr)
            return 2
        print(issue_token(officer, settings))
        return 0
    refuse_development_defaults(settings)
    serve(create_app(settings), settings)
    return 0


async def _find(settings: ReviewSettings, officer_id: str) -> Officer | None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        settings.shared.mongodb_url, serverSelectionTimeoutMS=2000
    )
    try:
        roster = await Directory(client[settings.database]).roster()
        if roster.officers:
            return roster.officer(officer_id)
    except Exception:  # no database here: the roster file is the directory's seed
        pass
    finally:
        await client.close()
    return load_roster(settings.roster_file).officer(officer_id)


if __name__ == "__main__":
    sys.exit(main())
