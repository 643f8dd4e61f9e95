"""`python -m services.audit` runs audit; `python -m services.audit verify [--since DATE]
[--expect-seal SEQ:HASH]` checks every seal (and that the one the operator kept is still there,
unchanged) and every dossier's chain, prints the first broken link (exit 1) or that all holds
(exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, datetime

from services.audit import handlers, ledger
from services.audit.app import create_app
from services.audit.domain import start_of_day
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared.clock import utcnow
from shared.production import refuse_development_defaults
from shared.serve import serve
from shared.storage import mongo_client


async def verify(
    settings: AuditSettings,
    since: date | None,
    expect_seal: tuple[int, str] | None = None,
    as_of: datetime | None = None,
) -> int:
    """Check the whole log; `as_of` (a restored backup's moment) is when it was last live:
    links settled after its last seal are unsealed because it stopped then, not because a seal
    went missing."""
    client = mongo_client(settings.shared.mongodb_url)
    try:
        store = AuditStore(client[settings.database])
        broken = await handlers.verify_all(
            store=store,
            since=start_of_day(since) if since else None,
            hmac_key=settings.hmac_key_bytes(),
            trusted=settings.trusted_keys(),
            expect_seal=expect_seal,
            unsealed_before=(as_of or utcnow()) - settings.unsealed_after(),
        )
    finally:
        await client.close()
    if broken is None:
        print(json.dumps({"ok": True}))
        return 0
    print(json.dumps({"ok": False, "broken": broken.as_dict()}, ensure_ascii=False))
    return 1


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give the moment with its offset (…Z or +07:00)")
    return moment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.audit")
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("verify", help="check every seal and chain; name the first break")
    check.add_argument("--since", type=date.fromisoformat, help="only from this day (YYYY-MM-DD)")
    check.add_argument(
        "--expect-seal",
        type=ledger.parse_expected_seal,
        metavar="SEQ:HASH",
        help="a seal kept outside the database (GET /v1/audit/seals/latest): fail unless it "
        "is still there, unchanged",
    )
    check.add_argument(
        "--as-of",
        type=_moment,
        metavar="ISO-8601",
        help="a restored backup: the moment it was taken (its manifest's finished_at), so that "
        "what was settled after its last seal is not taken for a missing seal",
    )
    args = parser.parse_args(argv)
    settings = AuditSettings()
    if args.command == "verify":
        return asyncio.run(verify(settings, args.since, args.expect_seal, args.as_of))
    refuse_development_defaults(settings)
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
