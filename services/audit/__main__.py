"""`python -m services.audit` runs audit; `python -m services.audit verify [--since DATE]`
checks every seal and every dossier's chain, prints the first broken link (exit 1) or that all
holds (exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date

from services.audit import handlers
from services.audit.app import create_app
from services.audit.domain import start_of_day
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared.serve import serve
from shared.storage import mongo_client


async def verify(settings: AuditSettings, since: date | None) -> int:
    client = mongo_client(settings.shared.mongodb_url)
    try:
        store = AuditStore(client[settings.database])
        broken = await handlers.verify_all(
            store=store,
            since=start_of_day(since) if since else None,
            hmac_key=settings.hmac_key.get_secret_value().encode(),
            trusted=settings.trusted_keys(),
        )
    finally:
        await client.close()
    if broken is None:
        print(json.dumps({"ok": True}))
        return 0
    print(json.dumps({"ok": False, "broken": broken.as_dict()}, ensure_ascii=False))
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.audit")
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("verify", help="check every seal and chain; name the first break")
    check.add_argument("--since", type=date.fromisoformat, help="only from this day (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    settings = AuditSettings()
    if args.command == "verify":
        return asyncio.run(verify(settings, args.since))
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
