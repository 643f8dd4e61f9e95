"""MongoDB through PyMongo's native asyncio client; each service owns its own database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


def mongo_client(url: str) -> AsyncMongoClient[Document]:
    """A client that returns timezone-aware datetimes and fails fast when the server is away."""
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        uuidRepresentation="standard",
    )


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """True when the database answers."""
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


Indexes = Mapping[str, Sequence[IndexModel]]
"""A service's declared indexes: collection name → its indexes (besides `_id`).

Each service declares every index it relies on as `INDEXES` in `services/<name>/store.py`; the
index-coverage test reads these declarations, so a query no declared index serves fails there,
the way MongoDB's `notablescan` would in production.
"""


async def ensure_indexes(db: AsyncDatabase[Document], indexes: Indexes) -> None:
    """Create the declared indexes (a no-op for those that already exist)."""
    for collection, models in indexes.items():
        if models:
            await db[collection].create_indexes(list(models))
