"""Past dossiers loaded straight into the stores, by cloning real ones (template cloning).

The benchmark runs a few real dossiers to the end, then this module snapshots every document
the services' databases hold that belongs to them, and inserts clones of that set, round after
round, with fresh identifiers. It knows nothing of the services' document formats; per round,
consistently across every collection:

- every occurrence of a template dossier code (in any string) becomes a new code, dated on the
  round's day (a day in the past ~3 years) with a number of its own;
- every UUID string, hex identifier (24, 32 or 64 hex digits: ObjectId strings, UUIDs without
  dashes, digests), ObjectId and binary UUID becomes a fresh one (ObjectIds carry the round's
  time); identifiers that existed before the templates ran (seeded officers, units...) are
  shared, not cloned;
- every datetime moves back by the round's number of days;
- a unique index (read with list_indexes) whose fields the above left unchanged gets its
  integer field made unique (negative: below any value a live counter hands out), else its
  string field suffixed.

A document belongs to the templates if it contains one of their codes, or an identifier found
in one that does (GridFS chunks, seals...), transitively; a document whose `_id` would not
change (a singleton: a counter, a chain head) is left out and reported.
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson import Binary, ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient, IndexModel
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

Document = dict[str, Any]
Path_ = tuple[str | int, ...]
Where = tuple[str, str]  # (database, collection)

IDENT = (
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![0-9a-zA-Z])(?:[0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{24})(?![0-9a-zA-Z])"
)
IDENT_RE = re.compile(IDENT)
CODE_PARTS = re.compile(r"^(?P<head>.*-)(?P<day>\d{6})-(?P<number>\d+)$")
YEARS = 3
CONTENT = "__bench_content__"  # a GridFS file's bytes, kept beside its document


def _walk(value: Any, path: Path_ = ()) -> Any:
    """(path, leaf) for every leaf of a document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))
    else:
        yield path, value


def _tokens(doc: Document, code_re: re.Pattern[str] | None) -> set[Any]:
    found: set[Any] = set()
    for _, leaf in _walk(doc):
        if isinstance(leaf, str):
            found.update(IDENT_RE.findall(leaf))
            if code_re is not None:
                found.update(code_re.findall(leaf))
        elif isinstance(leaf, ObjectId):
            found.add(leaf)
        elif isinstance(leaf, Binary) and leaf.subtype in (3, 4) and len(leaf) == 16:
            found.add(bytes(leaf))
    return found


async def collections(client: AsyncMongoClient[Document], prefix: str) -> list[Where]:
    """Every collection of the databases named `prefix*`; GridFS buckets by the names the
    driver uses (`X.files`, `X.chunks`), whatever the server lists (nx-27017 0.8.1 lists
    `X_files` and `X_chunks`, which it cannot read)."""
    out: list[Where] = []
    for name in sorted(await client.list_database_names()):
        if not name.startswith(prefix):
            continue
        listed = {
            c for c in await client[name].list_collection_names() if not c.startswith("system.")
        }
        for collection in sorted(listed):
            for part in ("files", "chunks"):
                other = "chunks" if part == "files" else "files"
                bucket = collection.removesuffix(f"_{part}")
                if bucket != collection and f"{bucket}_{other}" in listed:
                    collection = f"{bucket}.{part}"
            out.append((name, collection))
    return out


async def dump(client: AsyncMongoClient[Document], prefix: str) -> dict[Where, list[Document]]:
    """Every document of the databases named `prefix*` (small: called before any history is
    loaded); a GridFS file with its content under CONTENT, and no chunks (a clone is uploaded
    through GridFS, which servers emulating it require)."""
    out: dict[Where, list[Document]] = {}
    for where in await collections(client, prefix):
        db = client[where[0]]
        if where[1].endswith(".chunks"):
            continue
        try:
            docs = await asyncio.wait_for(db[where[1]].find({}).to_list(), 60)
        except (OperationFailure, TimeoutError) as exc:
            print(f"[history] {where[0]}.{where[1]} unreadable: {exc!r}"[:300], file=sys.stderr)
            continue
        if where[1].endswith(".files"):
            bucket = AsyncGridFSBucket(db, bucket_name=where[1].removesuffix(".files"))
            for doc in docs:
                doc[CONTENT] = await (await bucket.open_download_stream(doc["_id"])).read()
        out[where] = docs
    return out


async def count(client: AsyncMongoClient[Document], where: Where) -> int:
    collection = client[where[0]][where[1]]
    try:
        return await collection.estimated_document_count()
    except OperationFailure:
        return await collection.count_documents({})


async def counts(client: AsyncMongoClient[Document], prefix: str) -> dict[Where, int]:
    return {where: await count(client, where) for where in await collections(client, prefix)}


def preexisting(docs: dict[Where, list[Document]]) -> set[Any]:
    """Identifiers present before the templates ran: shared by every clone, never rewritten."""
    found: set[Any] = set()
    for items in docs.values():
        for doc in items:
            found |= _tokens(doc, None)
    return found


@dataclass
class Edit:
    path: Path_
    kind: str  # str, oid, date, uuid, int, suffix


@dataclass
class Template:
    where: Where
    raw: bytes
    edits: list[Edit]


@dataclass
class Snapshot:
    codes: list[str]
    templates: list[Template]
    per_collection: Counter[Where]
    left_out: Counter[Where]
    shared: set[Any]


def _get(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _dotted(doc: Document, dotted: str) -> tuple[Path_, Any] | None:
    path: Path_ = tuple(dotted.split("."))
    try:
        return path, _get(doc, path)
    except (KeyError, TypeError, IndexError):
        return None


async def take_snapshot(
    client: AsyncMongoClient[Document],
    prefix: str,
    codes: list[str],
    shared: set[Any],
) -> Snapshot:
    """The templates' documents, each with the edits a clone makes to it."""
    code_re = re.compile("|".join(re.escape(c) for c in sorted(codes, key=len, reverse=True)))
    everything = await dump(client, prefix)
    tokens = {
        (where, i): _tokens(doc, code_re) - shared
        for where, docs in everything.items()
        for i, doc in enumerate(docs)
    }
    code_set = set(codes)
    members = {key for key, found in tokens.items() if found & code_set}
    reach: set[Any] = set().union(*(tokens[k] for k in members)) if members else set()
    for _ in range(6):  # GridFS chunks of a dossier's files, seals of its records...
        more = {k for k, found in tokens.items() if k not in members and found & reach}
        if not more:
            break
        members |= more
        for key in more:
            reach |= tokens[key]
    unique: dict[Where, list[list[str]]] = {}
    for where in everything:
        indexes = [ix async for ix in await client[where[0]][where[1]].list_indexes()]
        unique[where] = [
            list(ix["key"].keys()) for ix in indexes if ix.get("unique") and ix["name"] != "_id_"
        ]
    snapshot = Snapshot(codes, [], Counter(), Counter(), shared)
    for where, i in sorted(members, key=lambda k: (k[0], k[1])):
        doc = everything[where][i]
        edits = _edits(doc, code_re, shared)
        if not any(e.path[:1] == ("_id",) for e in edits):
            if not isinstance(doc["_id"], int) or isinstance(doc["_id"], bool):
                snapshot.left_out[where] += 1  # a singleton: a counter, a chain head...
                continue
            edits.append(Edit(("_id",), "int"))  # numbered (seals): below the live numbers
        edits += _unique_edits(doc, edits, unique[where])
        snapshot.templates.append(Template(where, bson.encode(doc), edits))
        snapshot.per_collection[where] += 1
    return snapshot


def _edits(doc: Document, code_re: re.Pattern[str], shared: set[Any]) -> list[Edit]:
    edits = []
    for path, leaf in _walk(doc):
        if isinstance(leaf, str):
            hits = set(IDENT_RE.findall(leaf)) | set(code_re.findall(leaf))
            if hits - shared:
                edits.append(Edit(path, "str"))
        elif isinstance(leaf, ObjectId) and leaf not in shared:
            edits.append(Edit(path, "oid"))
        elif isinstance(leaf, datetime):
            edits.append(Edit(path, "date"))
        elif (
            isinstance(leaf, Binary)
            and leaf.subtype in (3, 4)
            and len(leaf) == 16
            and bytes(leaf) not in shared
        ):
            edits.append(Edit(path, "uuid"))
    return edits


def _unique_edits(doc: Document, edits: list[Edit], indexes: list[list[str]]) -> list[Edit]:
    """For each unique index whose values no edit changes: make one of its fields unique."""
    changed = {e.path for e in edits}
    extra: list[Edit] = []
    for fields in indexes:
        located = [found for f in fields if (found := _dotted(doc, f)) is not None]
        if not located:
            continue  # sparse or partial: the index does not hold this document
        if any(p[: len(c)] == c or c[: len(p)] == p for p, _ in located for c in changed):
            continue
        ints = [p for p, v in located if isinstance(v, int) and not isinstance(v, bool)]
        strings = [p for p, v in located if isinstance(v, str)]
        if ints:
            extra.append(Edit(ints[0], "int"))
        elif strings:
            extra.append(Edit(strings[0], "suffix"))
        changed |= {e.path for e in extra}
    return extra


@dataclass
class Round:
    """One clone of every template: its own day, codes and identifiers."""

    number: int
    days: int
    mapping: dict[Any, Any] = field(default_factory=dict)


class Cloner:
    """Makes the clones of a snapshot, round after round."""

    def __init__(self, snapshot: Snapshot, seed: int = 10) -> None:
        self.snapshot = snapshot
        self.code_re = re.compile(
            "|".join(re.escape(c) for c in sorted(snapshot.codes, key=len, reverse=True))
        )
        self.token_re = re.compile(f"{self.code_re.pattern}|{IDENT}")
        self.code_set = set(snapshot.codes)
        self.random = random.Random(seed)  # clones' identifiers: unique, not secret
        self.rounds = 0
        self.numbers: Counter[str] = Counter()  # per code head and day: numbers handed out
        self.int_span: dict[tuple[Where, Path_], tuple[int, int]] = {}
        for template in snapshot.templates:
            doc = bson.decode(template.raw)
            for edit in template.edits:
                if edit.kind == "int":
                    value = int(_get(doc, edit.path))
                    key = (template.where, edit.path)
                    low, high = self.int_span.get(key, (value, value))
                    self.int_span[key] = (min(low, value), max(high, value))

    def new_round(self) -> Round:
        self.rounds += 1
        return Round(self.rounds, self.random.randint(1, 365 * YEARS))

    def _code(self, code: str, days: int) -> str:
        parts = CODE_PARTS.match(code)
        if parts is None:
            return f"{code}-h{self.rounds}"
        try:
            day = datetime.strptime(parts["day"], "%y%m%d") - timedelta(days=days)
        except ValueError:
            return f"{code}-h{self.rounds}"
        head = f"{parts['head']}{day:%y%m%d}-"
        self.numbers[head] += 1
        return f"{head}{self.numbers[head]:0{len(parts['number'])}d}"

    def _token(self, token: str, r: Round) -> str:
        if token in self.snapshot.shared:
            return token
        new = r.mapping.get(token)
        if new is None:
            if token in self.code_set:
                new = self._code(token, r.days)
            elif len(token) == 36:
                h = f"{self.random.getrandbits(128):032x}"  # a version-4 UUID, made quickly
                new = (
                    f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"
                )
                new = new.upper() if token.isupper() else new
            else:
                new = f"{self.random.getrandbits(len(token) * 4):0{len(token)}x}"
            r.mapping[token] = new
        return str(new)

    def _oid(self, oid: ObjectId, r: Round) -> ObjectId:
        new = r.mapping.get(oid)
        if new is None:
            at = int(oid.generation_time.timestamp()) - r.days * 86400
            new = ObjectId(struct.pack(">IQ", max(at, 0), self.random.getrandbits(64)))
            r.mapping[oid] = new
        return ObjectId(new)

    def clone(self, template: Template, r: Round) -> Document:
        doc = bson.decode(template.raw)
        shift = timedelta(days=r.days)
        for edit in template.edits:
            value = _get(doc, edit.path)
            if edit.kind == "str":
                value = self.token_re.sub(lambda m: self._token(m.group(0), r), value)
            elif edit.kind == "oid":
                value = self._oid(value, r)
            elif edit.kind == "date":
                value = value - shift
            elif edit.kind == "uuid":
                key = bytes(value)
                if key not in r.mapping:
                    fresh = self.random.getrandbits(128).to_bytes(16, "big")
                    r.mapping[key] = Binary(fresh, value.subtype)
                value = r.mapping[key]
            elif edit.kind == "int":
                low, high = self.int_span[(template.where, edit.path)]
                value = -(1 + (r.number - 1) * (high - low + 1) + (value - low))
            elif edit.kind == "suffix":
                value = f"{value}~h{r.number}"
            _set(doc, edit.path, value)
        return doc


@dataclass
class LoadReport:
    dossiers: int
    documents: int
    seconds: float
    capped: str = ""
    deferred: int = 0  # secondary indexes dropped for the load and built again after it
    index_seconds: float = 0.0  # of `seconds`: building them again

    @property
    def rate(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0


async def load(
    client: AsyncMongoClient[Document],
    cloner: Cloner,
    dossiers: int,
    *,
    budget: float,
    batch: int = 2000,
    in_flight: int = 3,
    defer: bool = True,
) -> LoadReport:
    """Insert clones until `dossiers` more past dossiers are stored (whole rounds of the
    templates), or `budget` seconds have gone (then the report says where it stopped).

    With `defer`, the secondary indexes of the collections it fills are dropped first and
    built again once the documents are in (as mongorestore does): see `deferrable`."""
    deferred = await drop_deferrable(client, list(cloner.snapshot.per_collection)) if defer else []
    try:
        report = await _load(
            client, cloner, dossiers, budget=budget, batch=batch, in_flight=in_flight
        )
    finally:
        building = time.perf_counter()
        await rebuild(client, deferred)
    report.deferred = len(deferred)
    report.index_seconds = time.perf_counter() - building
    report.seconds += report.index_seconds
    return report


def deferrable(index: Mapping[str, Any]) -> bool:
    """A secondary index history's load may build after the documents are in: not `_id`, not
    unique (a duplicate a clone would make must still be refused on insert), not TTL (its
    expiry must not lapse). Each one costs an insert a B-tree update; on nx-27017 0.8.1 (one
    autocommit INSERT per document, JSON text re-parsed by `json_extract` for every key of
    every index) audit's records, with 7 such indexes of 2 or 3 keys, took 3,760 rows/s with
    them and 11,600 rows/s without, their build after 200,000 rows included (3 s)."""
    return (
        index.get("name") != "_id_"
        and not index.get("unique")
        and ("expireAfterSeconds" not in index)
    )


async def drop_deferrable(
    client: AsyncMongoClient[Document], wheres: list[Where]
) -> list[tuple[Where, Document]]:
    """Drop the deferrable indexes of `wheres` (GridFS buckets kept: servers emulate them);
    what was dropped, to `rebuild`."""
    dropped: list[tuple[Where, Document]] = []
    for where in wheres:
        if where[1].endswith((".files", ".chunks")):
            continue
        collection = client[where[0]][where[1]]
        for index in [ix async for ix in await collection.list_indexes()]:
            if deferrable(index):
                await collection.drop_index(index["name"])
                dropped.append((where, dict(index)))
    return dropped


async def rebuild(
    client: AsyncMongoClient[Document], dropped: list[tuple[Where, Document]]
) -> None:
    """Create again, with the same keys and options, what `drop_deferrable` dropped."""
    by_collection: dict[Where, list[IndexModel]] = defaultdict(list)
    for where, index in dropped:
        options = {k: v for k, v in index.items() if k not in ("v", "key", "ns")}
        by_collection[where].append(IndexModel(list(index["key"].items()), **options))
    for where, models in by_collection.items():
        await client[where[0]][where[1]].create_indexes(models)


async def _load(
    client: AsyncMongoClient[Document],
    cloner: Cloner,
    dossiers: int,
    *,
    budget: float,
    batch: int,
    in_flight: int,
) -> LoadReport:
    per_round = len(cloner.snapshot.codes)
    rounds = -(-dossiers // per_round)
    buffers: dict[Where, list[Document]] = defaultdict(list)
    pending: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    inserted = 0
    failure: list[str] = []

    async def insert(where: Where, docs: list[Document]) -> None:
        try:
            if where[1].endswith(".files"):
                await _upload(client, where, docs)
            else:
                await client[where[0]][where[1]].insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            failure.append(f"{where[0]}.{where[1]}: {errors[:1] or exc}")
        except PyMongoError as exc:
            failure.append(f"{where[0]}.{where[1]}: {exc!r}")

    async def flush(where: Where) -> None:
        nonlocal inserted
        docs, buffers[where] = buffers[where], []
        if not docs:
            return
        while len(pending) >= in_flight:
            _, still = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.intersection_update(still)
        pending.add(asyncio.create_task(insert(where, docs)))
        inserted += len(docs)

    done_rounds = 0
    last_note = started
    capped = ""
    for _ in range(rounds):
        r = cloner.new_round()
        for template in cloner.snapshot.templates:
            buffers[template.where].append(cloner.clone(template, r))
            if len(buffers[template.where]) >= batch:
                await flush(template.where)
        done_rounds += 1
        if failure:
            break
        elapsed = time.perf_counter() - started
        if time.perf_counter() - last_note > 10:
            last_note = time.perf_counter()
            print(
                f"[history] {done_rounds * per_round} dossiers, {inserted} documents, "
                f"{inserted / elapsed:.0f} documents/s",
                file=sys.stderr,
                flush=True,
            )
        if elapsed > budget:
            capped = (
                f"capped at {done_rounds * per_round} of {dossiers} dossiers after "
                f"{elapsed:.0f} s ({inserted / elapsed:.0f} documents/s): the database is "
                "too slow to load more within --history-budget"
            )
            break
    for where in list(buffers):
        await flush(where)
    if pending:
        await asyncio.gather(*pending)
    if failure:
        raise RuntimeError(f"history load refused: {failure[0]}")
    return LoadReport(done_rounds * per_round, inserted, time.perf_counter() - started, capped)


async def _upload(client: AsyncMongoClient[Document], where: Where, docs: list[Document]) -> None:
    """Clones of GridFS files, written in GridFS's layout by hand as intake writes them (the
    chunks, then the files): the driver's `GridFSBucket` looks at the bucket's indexes before
    each upload, with a query over the whole files collection, which on nx-27017 0.8.1 reads
    every file stored: its uploads fell from 26/s to 3/s within 6,000 files."""
    db = client[where[0]]
    bucket = where[1].removesuffix(".files")
    chunks: list[Document] = []
    files: list[Document] = []
    for doc in docs:
        content: bytes = doc[CONTENT]
        size = int(doc.get("chunkSize") or 255 * 1024)
        chunks += [
            {"files_id": doc["_id"], "n": n, "data": Binary(content[at : at + size])}
            for n, at in enumerate(range(0, len(content), size))
        ]
        files.append({k: v for k, v in doc.items() if k != CONTENT})
    if chunks:
        await db[f"{bucket}.chunks"].insert_many(chunks, ordered=True)
    await db[f"{bucket}.files"].insert_many(files, ordered=True)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
