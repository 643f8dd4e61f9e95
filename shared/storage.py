"""MongoDB through PyMongo's native asyncio client; each service owns its own database."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

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
