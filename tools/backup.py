"""A consistent export and import of the four services' databases, for the embedded server and
for MongoDB alike (over the wire: no file of the server is read).

    python -m tools.backup dump --out DIR       # every collection of intake, review, notify, audit
    python -m tools.backup check --from DIR     # the files against their manifest (no database)
    python -m tools.backup restore --from DIR [--force]

The database URL and prefix come from `MOTCUA_MONGODB_URL` and `MOTCUA_DATABASE_PREFIX`, as
for the services: a dump taken under one prefix restores under another.

The layout is mongodump's: `DIR/<service>/<collection>.bson` (the documents, BSON, one after
the other, in `_id` order, exactly the bytes the server returned) and `<collection>.metadata.json`
(options and indexes), so GridFS attachments (`attachments.files`, `attachments.chunks`) are
two collections like the others. `DIR/manifest.json` lists per collection its count and the
SHA-256 of its file, and audit's newest seal in the dump. `restore` checks every file against
the manifest before it writes anything, refuses a target database that holds any document
(`--force` drops them first), creates every service's declared indexes (`tools.setup`, through
`shared.storage.ensure_indexes`), inserts the documents, and checks each collection's count and
SHA-256 as the database then returns it.

Consistency. On a MongoDB replica set every read goes through one snapshot session: all four
databases are read at one cluster time (`readConcern: snapshot`; the dump must finish within
the server's `minSnapshotHistoryWindowInSeconds`, 300 s by default). Elsewhere (nx-27017, a lone
mongod) there is no snapshot, so while the services write, each database's collections are read
one at a time in an order that keeps every reference of what was read first inside what is read
after (`READ_ORDER`):
- what is moved from a live collection to a history is read at the source first (a task or a
  delivery moved in between is read twice, which the mover settles again, never lost);
- the outbox pointers after the state that holds their events (a pointer read without its event
  is one the relay already handles: a crash between the two writes);
- a GridFS file before its chunks (its chunks are written before it), counters after the
  dossiers they number;
- audit: seals, chain heads, pending markers, links, statistics, then records, and a record that
  is neither chained nor pending in the dump is left out (`AuditCut`): it arrived while the dump
  ran, after the cut; so the restored log verifies whole.
Across databases the cut is per database, downstream first (audit, notify, review, intake), so
what a service refers to is in the database of the one upstream of it; what a downstream service
had not handled when its database was read is handled again only if its event is still in the
broker (docs/operations.md, "Backup and restore").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.clock import utcnow
from shared.settings import SharedSettings
from shared.storage import Document, mongo_client
from tools.setup import SERVICES, create_all_indexes

FORMAT = "motcua-backup/1"
MANIFEST = "manifest.json"
RAW = CodecOptions(document_class=RawBSONDocument, tz_aware=True)
BATCH_BYTES = 8 * 1024 * 1024  # one insert carries at most this much (MongoDB's limit: 48 MB)
BATCH_DOCS = 1000
CLOCK_SLACK = timedelta(minutes=10)
"""How far audit's clock may be from this tool's: records received up to this long before the
pending markers were read are checked against the cut, not taken as old."""

DUMP_ORDER = ("audit", "notify", "review", "intake")
"""Downstream first: a dossier, task or delivery that a later-read service refers to was
already there upstream (events flow intake → review → notify → audit)."""

# Per service: the collections read in this order, after any collection not named here (see
# the module's docstring for why each comes where it does).
READ_ORDER: dict[str, tuple[str, ...]] = {
    "intake": (
        "dossiers",
        "statuses",
        "attachments.files",
        "attachments.chunks",
        "counters",
        "idempotency_keys",
        "outbox_pending",
    ),
    "review": ("tasks", "transitions", "timers_fired", "tasks_history", "outbox_pending"),
    "notify": ("recipients", "deliveries", "delivery_history", "outbox_pending"),
    "audit": (
        "seals",
        "heads",
        "pending",
        "chain",
        "dossier_fact_records",
        "dossier_facts",
        "records",
    ),
}


class BackupError(Exception):
    """A dump or restore that must not go on; the message says why."""


def declared(service: str) -> set[str]:
    """The collections `service` declares indexes for (every one it queries)."""
    from services.audit import store as audit_store
    from services.intake import store as intake_store
    from services.notify import inbound_store
    from services.notify import store as notify_store
    from services.review import store as review_store

    return set(
        {
            "intake": intake_store.INDEXES,
            "review": review_store.INDEXES,
            "notify": {**notify_store.INDEXES, **inbound_store.INBOUND_INDEXES},
            "audit": audit_store.INDEXES,
        }[service]
    )


def collections_of(service: str, listed: list[str]) -> set[str]:
    """What a dump of `service` reads: the collections it declares and those the database
    lists, less the server's own (`system.*`) and nx-27017's storage of a GridFS bucket, which
    it lists as `<bucket>_files` and `<bucket>_chunks` (read as `<bucket>.files`, `.chunks`)."""
    names = declared(service) | set(listed)
    buckets = {n.removesuffix(".files") for n in names if n.endswith(".files")}
    storage = {f"{b}_{part}" for b in buckets for part in ("files", "chunks")}
    return {n for n in names if not n.startswith("system.") and n not in storage}


def read_order(service: str, present: set[str]) -> list[str]:
    """The collections of `service`'s database in the order a dump reads them."""
    ordered = READ_ORDER.get(service, ())
    rest = sorted(c for c in present if c not in ordered)
    return [*rest, *(c for c in ordered if c in present)]


@dataclass
class AuditCut:
    """Keeps audit's dump one consistent log without a snapshot: a record that is neither
    chained nor pending in the dump arrived after the markers were read (its marker, written
    before it, was not there yet) and before its link (read later) existed, so it is left out.

    Only records received from `since` on can be such a record (older ones were pending when
    the markers were read, or chained before: in the dump either way), so only the links
    settled from then on are remembered."""

    since: datetime | None = None
    pending: set[Any] = field(default_factory=set)
    chained: set[Any] = field(default_factory=set)
    left_out: int = 0

    def start(self, collection: str, now: datetime) -> None:
        if collection == "pending":
            self.since = now - CLOCK_SLACK

    def saw(self, collection: str, doc: Document) -> None:
        if collection == "pending":
            self.pending.add(doc["_id"])
        elif collection == "chain" and self._recent(doc.get("settled_at")):
            self.chained.add(doc.get("record_id"))

    def keeps(self, collection: str, doc: Document) -> bool:
        if collection != "records" or not self._recent(doc.get("recorded_at")):
            return True
        kept = doc["_id"] in self.pending or doc["_id"] in self.chained
        self.left_out += not kept
        return kept

    def _recent(self, at: Any) -> bool:
        # Before the markers are read nothing is recent; a document without its time is old.
        return self.since is not None and isinstance(at, datetime) and at >= self.since


class Everything:
    """The cut of a service read whole (a snapshot, or no rule of its own)."""

    left_out = 0

    def start(self, collection: str, now: datetime) -> None:
        pass

    def saw(self, collection: str, doc: Document) -> None:
        pass

    def keeps(self, collection: str, doc: Document) -> bool:
        return True


Cut = AuditCut | Everything
WATCHED = {"audit": ("pending", "chain", "records")}
"""The collections whose documents a cut decodes (the others are copied as bytes)."""


def raw_collection(db: AsyncDatabase[Document], name: str) -> AsyncCollection[RawBSONDocument]:
    """A collection whose documents come and go as the BSON bytes the server holds."""
    return cast("AsyncCollection[RawBSONDocument]", db.get_collection(name, codec_options=RAW))


# --- dump -------------------------------------------------------------------------------------


async def server_info(client: AsyncMongoClient[Document]) -> dict[str, Any]:
    hello = await client.admin.command("hello")
    try:
        build = await client.admin.command("buildInfo")
        version = str(build.get("version", "?"))
    except Exception:  # a server without buildInfo is still one to back up
        version = "?"
    status: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        status = await client.admin.command("serverStatus")
    return {
        "version": version,
        "process": str(status.get("process", "")),
        "replica_set": hello.get("setName"),
        "max_wire_version": int(hello.get("maxWireVersion", 0)),
    }


def snapshot_possible(info: dict[str, Any]) -> bool:
    """Whether the server reads at one cluster time across databases (a replica set, 5.0+)."""
    return bool(info.get("replica_set")) and int(info.get("max_wire_version", 0)) >= 13


@contextlib.asynccontextmanager
async def reading_session(
    client: AsyncMongoClient[Document], snapshot: bool
) -> AsyncIterator[AsyncClientSession | None]:
    if not snapshot:
        yield None
        return
    async with client.start_session(snapshot=True) as session:
        yield session


def bucket_of(name: str) -> str | None:
    """The GridFS bucket whose chunks `name` holds (`attachments.chunks` → `attachments`)."""
    return name.removesuffix(".chunks") if name.endswith(".chunks") else None


async def documents(
    db: AsyncDatabase[Document],
    name: str,
    session: AsyncClientSession | None,
    file_ids: list[Any] | None = None,
) -> AsyncIterator[bytes]:
    """A collection's documents as BSON, in `_id` order; a GridFS bucket's chunks file by file
    (`file_ids`, in order), each in `n` order, by the (files_id, n) index: nx-27017 0.8.1
    answers an unfiltered find on a `.chunks` collection with nothing. Chunks of no file (an
    upload that died) are left out: nothing can read them."""
    collection = raw_collection(db, name)
    try:
        if file_ids is None:
            async for raw in collection.find({}, session=session).sort("_id", 1):
                yield bytes(raw.raw)
            return
        for file_id in file_ids:
            cursor = collection.find({"files_id": file_id}, session=session).sort("n", 1)
            async for raw in cursor:
                yield bytes(raw.raw)
    except PyMongoError as exc:
        raise BackupError(f"{db.name}.{name}: {exc}") from exc


async def dump_collection(
    db: AsyncDatabase[Document],
    name: str,
    folder: Path,
    cut: Cut,
    watched: tuple[str, ...],
    session: AsyncClientSession | None,
    file_ids: list[Any] | None = None,
) -> dict[str, Any]:
    """Write one collection's documents and metadata; its manifest entry."""
    options: dict[str, Any] = {}
    async for info in await db.list_collections(filter={"name": name}, session=session):
        options = dict(info.get("options") or {})
    indexes = [dict(i) async for i in await db[name].list_indexes(session=session)]
    cut.start(name, utcnow())
    digest, count, size = hashlib.sha256(), 0, 0
    path = folder / f"{name}.bson"
    with path.open("wb") as out:
        async for data in documents(db, name, session, file_ids):
            if name in watched:
                doc: Document = bson.decode(data, codec_options=CodecOptions(tz_aware=True))
                cut.saw(name, doc)
                if not cut.keeps(name, doc):
                    continue
            out.write(data)
            digest.update(data)
            count += 1
            size += len(data)
    metadata = {"collectionName": name, "options": options, "indexes": indexes}
    (folder / f"{name}.metadata.json").write_text(json_util.dumps(metadata, indent=1) + "\n")
    return {"count": count, "bytes": size, "sha256": digest.hexdigest()}


def file_ids_of(path: Path) -> list[Any]:
    """The `_id`s of a dumped GridFS files collection, in order."""
    return [bson.decode(d)["_id"] for d in read_documents(path)] if path.exists() else []


def new_folder(out: Path) -> Path:
    """`out`, created, refused when it holds anything (a dump never mixes with another)."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: dump into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


async def dump(url: str, prefix: str, out: Path) -> dict[str, Any]:
    """Dump every service's database into `out` (made by `new_folder`); the manifest."""
    client = mongo_client(url, service="backup")
    try:
        info = await server_info(client)
        snapshot = snapshot_possible(info)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "started_at": utcnow().isoformat(),
            "server": info,
            "snapshot": snapshot,
            "prefix": prefix,
            "services": {},
        }
        async with reading_session(client, snapshot) as session:
            for service in DUMP_ORDER:
                db = client[f"{prefix}{service}"]
                cut: Cut = AuditCut() if service == "audit" and not snapshot else Everything()
                folder = out / service
                folder.mkdir()
                names = collections_of(service, await db.list_collection_names(session=session))
                collections = {}
                for name in read_order(service, names):
                    bucket = bucket_of(name)
                    files = f"{bucket}.files"
                    ids = file_ids_of(folder / f"{files}.bson") if files in names else None
                    collections[name] = await dump_collection(
                        db, name, folder, cut, WATCHED.get(service, ()), session, ids
                    )
                entry: dict[str, Any] = {"database": db.name, "collections": collections}
                if cut.left_out:
                    entry["left_out_after_cut"] = cut.left_out
                manifest["services"][service] = entry
        manifest["latest_seal"] = latest_seal(out / "audit" / "seals.bson")
        manifest["finished_at"] = utcnow().isoformat()
    finally:
        await client.close()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def read_documents(path: Path) -> Iterator[bytes]:
    """The raw BSON documents of a dump file, one after the other."""
    with path.open("rb") as src:
        yield from _split(src, path)


def _split(src: IO[bytes], path: Path) -> Iterator[bytes]:
    while head := src.read(4):
        if len(head) < 4:
            raise BackupError(f"{path}: truncated document length")
        length = int.from_bytes(head, "little")
        body = src.read(length - 4)
        if length < 5 or len(body) != length - 4:
            raise BackupError(f"{path}: truncated document")
        yield head + body


def latest_seal(path: Path) -> dict[str, Any] | None:
    """The newest seal of a dump's audit (its `seq` and `hash`), None when there is none."""
    if not path.exists():
        return None
    last: dict[str, Any] | None = None
    for data in read_documents(path):
        doc = bson.decode(data)
        if last is None or int(doc["seq"]) > int(last["seq"]):
            last = {"seq": int(doc["seq"]), "hash": str(doc.get("hash", ""))}
    return last


# --- check and restore --------------------------------------------------------------------------


def load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{path} is missing: not a backup of tools.backup")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def check(folder: Path) -> dict[str, Any]:
    """Every file of the backup against its manifest entry; BackupError on the first that
    differs (a missing, truncated or altered file)."""
    manifest = load_manifest(folder)
    for service, entry in manifest["services"].items():
        for name, expected in entry["collections"].items():
            path = folder / service / f"{name}.bson"
            if not path.is_file():
                raise BackupError(f"{path} is missing")
            digest, count = hashlib.sha256(), 0
            for data in read_documents(path):
                digest.update(data)
                count += 1
            if count != expected["count"] or digest.hexdigest() != expected["sha256"]:
                raise BackupError(
                    f"{path}: {count} documents, sha256 {digest.hexdigest()}; the manifest "
                    f"says {expected['count']}, {expected['sha256']}"
                )
    return manifest


async def occupied(client: AsyncMongoClient[Document], prefix: str) -> list[str]:
    """The target databases that hold any document."""
    found = []
    for service in SERVICES:
        db = client[f"{prefix}{service}"]
        for name in await db.list_collection_names():
            if not name.startswith("system.") and await db[name].find_one({}, {"_id": 1}):
                found.append(f"{db.name}.{name}")
                break
    return found


def batches(path: Path) -> Iterator[list[RawBSONDocument]]:
    batch: list[RawBSONDocument] = []
    size = 0
    for data in read_documents(path):
        batch.append(RawBSONDocument(data, codec_options=RAW))
        size += len(data)
        if len(batch) >= BATCH_DOCS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


async def collection_digest(
    db: AsyncDatabase[Document], name: str, file_ids: list[Any] | None
) -> tuple[int, str]:
    """The count and SHA-256 of a collection as the database returns it (read as a dump
    reads it)."""
    digest, count = hashlib.sha256(), 0
    async for data in documents(db, name, None, file_ids):
        digest.update(data)
        count += 1
    return count, digest.hexdigest()


def restore_order(names: list[str]) -> list[str]:
    """`names` with each GridFS bucket's chunks before its files, as an upload writes them
    (nx-27017 0.8.1 makes a file placeholder for chunks, which the file then replaces)."""
    out = list(names)
    for name in names:
        bucket = bucket_of(name)
        if bucket and f"{bucket}.files" in out:
            out.remove(name)
            out.insert(out.index(f"{bucket}.files"), name)
    return out


async def restore(url: str, prefix: str, folder: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore a checked backup under `prefix`; per collection the count restored and whether
    the database returns the very bytes dumped."""
    manifest = check(folder)
    client = mongo_client(url, service="backup")
    try:
        taken = await occupied(client, prefix)
        if taken and not force:
            raise BackupError(
                "not restoring over data (" + ", ".join(taken) + "): restore into empty "
                "databases (another MOTCUA_DATABASE_PREFIX), or pass --force to drop them first"
            )
        if force:
            for service in SERVICES:
                await client.drop_database(f"{prefix}{service}")
        await create_all_indexes(url, prefix)
        report: dict[str, Any] = {}
        for service, entry in manifest["services"].items():
            db = client[f"{prefix}{service}"]
            done = {}
            collections = entry["collections"]
            for name in restore_order(list(collections)):
                collection = raw_collection(db, name)
                for batch in batches(folder / service / f"{name}.bson"):
                    await collection.insert_many(batch, ordered=True)
            for name, expected in collections.items():
                bucket = bucket_of(name)
                files = folder / service / f"{bucket}.files.bson"
                ids = file_ids_of(files) if bucket and f"{bucket}.files" in collections else None
                count, digest = await collection_digest(db, name, ids)
                if count != expected["count"]:
                    raise BackupError(
                        f"{db.name}.{name}: {count} documents after restore, "
                        f"{expected['count']} in the backup"
                    )
                done[name] = {"count": count, "same_bytes": digest == expected["sha256"]}
            report[service] = {"database": db.name, "collections": done}
    finally:
        await client.close()
    return {"restored": report, "latest_seal": manifest.get("latest_seal")}


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.backup", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    out = sub.add_parser("dump", help="export every service's database into a new folder")
    out.add_argument("--out", type=Path, required=True)
    for verb, text in (("check", "check a backup's files"), ("restore", "import a backup")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("--from", dest="source", type=Path, required=True)
        if verb == "restore":
            p.add_argument("--force", action="store_true", help="drop the target databases first")
    args = parser.parse_args(argv)
    shared = SharedSettings()
    run: Callable[[], Any]
    if args.command == "dump":

        def run() -> Any:
            out = new_folder(args.out)
            return asyncio.run(dump(shared.mongodb_url, shared.database_prefix, out))
    elif args.command == "check":

        def run() -> Any:
            return check(args.source)
    else:

        def run() -> Any:
            return asyncio.run(
                restore(shared.mongodb_url, shared.database_prefix, args.source, force=args.force)
            )

    try:
        result = run()
    except BackupError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        return 1
    print(json.dumps({"ok": True, **summary(args.command, result)}, ensure_ascii=False))
    return 0


def summary(command: str, result: dict[str, Any]) -> dict[str, Any]:
    """What the command line prints: counts per collection, and the seal to verify against."""
    if command == "restore":
        seal = result.get("latest_seal")
        hint = (
            f"python -m services.audit verify --expect-seal SEQ:HASH (the newest seal you kept "
            f"whose number is at most {seal['seq']})"
            if seal
            else "python -m services.audit verify"
        )
        return {**result, "next": hint}
    counts = {
        service: {name: c["count"] for name, c in entry["collections"].items()}
        for service, entry in result["services"].items()
    }
    out: dict[str, Any] = {"counts": counts, "latest_seal": result.get("latest_seal")}
    if command == "dump":
        out["snapshot"] = result["snapshot"]
        left = {
            s: e["left_out_after_cut"]
            for s, e in result["services"].items()
            if e.get("left_out_after_cut")
        }
        if left:
            out["left_out_after_cut"] = left
    return out


if __name__ == "__main__":
    sys.exit(main())
