"""One-shot setup before the services start (the Helm chart's pre-install/pre-upgrade Job).

    python -m tools.setup [--definitions FILE --management-url URL]

Creates every service's declared indexes in its own database (the same calls each service
makes at start, so a large index build happens once, before the new pods roll out, rather than
in four readiness probes at once), then, with `--definitions`, imports a RabbitMQ definitions
file (users, permissions, exchanges, queues, policies) through the management API's
`POST /api/definitions`. The database URL and prefix come from `MOTCUA_MONGODB_URL` and
`MOTCUA_DATABASE_PREFIX` as for the services; the management credentials from
`MOTCUA_RABBITMQ_MANAGEMENT_USER` / `MOTCUA_RABBITMQ_MANAGEMENT_PASSWORD`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import sys
import urllib.request
from pathlib import Path

from shared.settings import SharedSettings
from shared.storage import ensure_indexes, mongo_client

log = logging.getLogger("motcua.setup")

SERVICES = ("intake", "review", "notify", "audit")


async def create_all_indexes(url: str, prefix: str) -> None:
    """Each service's indexes, in its database `<prefix><service>`."""
    from services.audit import store as audit_store
    from services.intake import store as intake_store
    from services.notify import inbound_store
    from services.notify import store as notify_store
    from services.review import store as review_store

    client = mongo_client(url, service="setup")
    try:
        await intake_store.create_indexes(client[f"{prefix}intake"])
        await ensure_indexes(client[f"{prefix}review"], review_store.INDEXES)
        await ensure_indexes(client[f"{prefix}notify"], notify_store.INDEXES)
        await ensure_indexes(client[f"{prefix}notify"], inbound_store.INBOUND_INDEXES)
        await audit_store.create_indexes(client[f"{prefix}audit"])
    finally:
        await client.close()
    log.info("indexes created for %s", ", ".join(SERVICES))


def import_definitions(path: Path, management_url: str, user: str, password: str) -> None:
    """POST the definitions file to RabbitMQ's management API (idempotent on the broker side)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        management_url.rstrip("/") + "/api/definitions",
        data=path.read_bytes(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        log.info("definitions %s imported: HTTP %s", path, response.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.setup", description=__doc__)
    parser.add_argument("--definitions", type=Path, help="RabbitMQ definitions JSON to import")
    parser.add_argument("--management-url", help="RabbitMQ management API, http(s)://host:15672")
    parser.add_argument("--skip-indexes", action="store_true", help="only import definitions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    if args.definitions and not args.management_url:
        parser.error("--definitions needs --management-url")
    shared = SharedSettings()
    if not args.skip_indexes:
        asyncio.run(create_all_indexes(shared.mongodb_url, shared.database_prefix))
    if args.definitions:
        import_definitions(
            args.definitions,
            args.management_url,
            os.environ.get("MOTCUA_RABBITMQ_MANAGEMENT_USER", ""),
            os.environ.get("MOTCUA_RABBITMQ_MANAGEMENT_PASSWORD", ""),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
