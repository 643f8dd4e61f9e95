"""The history loader's deferred indexes: dropped for the load, then built again as they were
(the benchmark measures the services on the indexes they declared, not on what the load left)."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient, IndexModel

from benchmarks.history import deferrable, drop_deferrable, rebuild
from shared.storage import Document
from tests.conftest import Isolation

pytestmark = pytest.mark.integration


async def _indexes(mongo: AsyncMongoClient[Document], name: str, coll: str) -> list[Document]:
    listed = [ix async for ix in await mongo[name][coll].list_indexes()]
    return sorted(({k: v for k, v in ix.items() if k != "v"} for ix in listed), key=str)


async def test_the_loader_drops_only_secondary_indexes_and_builds_them_again_the_same(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    name = isolation.database("audit")
    records = mongo[name]["records"]
    await records.create_indexes(
        [
            IndexModel([("dossier_code", 1), ("time", 1)]),
            IndexModel([("type", 1)]),
            IndexModel([("record_id", 1)], unique=True),
            IndexModel([("expires_at", 1)], expireAfterSeconds=0),
        ]
    )
    await records.insert_one({"_id": "r1", "dossier_code": "C-1", "time": 1, "record_id": "x"})
    before = await _indexes(mongo, name, "records")

    dropped = await drop_deferrable(mongo, [(name, "records")])

    assert sorted(list(ix["key"]) for _, ix in dropped) == [["dossier_code", "time"], ["type"]]
    left = await _indexes(mongo, name, "records")
    assert all(not deferrable(ix) for ix in left)
    assert len(left) == len(before) - 2
    await records.insert_many(
        [{"_id": f"r{n}", "dossier_code": "C-2", "time": n, "record_id": f"y{n}"} for n in (2, 3)]
    )
    await rebuild(mongo, dropped)
    assert await _indexes(mongo, name, "records") == before


def test_unique_ttl_and_id_indexes_are_kept_during_the_load() -> None:
    assert deferrable({"name": "t_1", "key": {"t": 1}})
    assert not deferrable({"name": "_id_", "key": {"_id": 1}})
    assert not deferrable({"name": "u_1", "key": {"u": 1}, "unique": True})
    assert not deferrable({"name": "e_1", "key": {"e": 1}, "expireAfterSeconds": 0})
