"""MongoDB through PyMongo's native asyncio client; each service owns its own database.

Every client made here counts the commands it sends (`motcua_db_commands_total`) and, when
`MOTCUA_COMMAND_LOG_DIR` is set, records each query (filter, sort, limit, call site) as a JSON
line, which the index-coverage test checks against the services' declared `INDEXES`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from pymongo import AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from shared.metrics import DB_COMMANDS

Document = dict[str, Any]

# The database's own chatter, not queries of ours: counted, never recorded in the command log.
UNRECORDED = frozenset(
    {
        "hello",
        "ismaster",
        "isMaster",
        "ping",
        "buildInfo",
        "serverStatus",
        "buildinfo",
        "endSessions",
        "saslStart",
        "saslContinue",
        "createIndexes",
        "listIndexes",
        "listCollections",
        "listDatabases",
        "dropDatabase",
        "drop",
        "killCursors",
        "getMore",
    }
)
_PROJECT = Path(__file__).resolve().parents[1]
_SERVICES = str(_PROJECT / "services") + os.sep
_SKIP = (str(Path(__file__).resolve()), str(_PROJECT / ".venv"))


def command_collection(name: str, command: Mapping[str, Any]) -> str:
    """The collection a command addresses ('' for database-level commands)."""
    if name == "getMore":
        return str(command.get("collection", ""))
    target = command.get(name)
    return target if isinstance(target, str) else ""


JOIN_STAGES = ("$lookup", "$unionWith", "$graphLookup")  # stages that query another collection


def command_query(name: str, command: Mapping[str, Any]) -> dict[str, Any] | None:
    """The filters, sort and limit of a query command; None for what is not a query."""
    filters: list[Any]
    sort: Any = None
    limit: Any = None
    if name == "find":
        filters = [command.get("filter") or {}]
        sort, limit = command.get("sort"), command.get("limit")
    elif name in ("count", "distinct"):
        filters = [command.get("query") or {}]
    elif name == "findAndModify":
        filters, sort = [command.get("query") or {}], command.get("sort")
    elif name == "delete":
        filters = [d.get("q") or {} for d in command.get("deletes", [])]
        limit = next((d.get("limit") for d in command.get("deletes", [])), None)
    elif name == "update":
        filters = [u.get("q") or {} for u in command.get("updates", [])]
    elif name == "aggregate":
        stages = list(command.get("pipeline", []))
        joins = [key for stage in stages for key in stage if key in JOIN_STAGES]
        first = stages[0] if stages else {}
        filters = [first["$match"]] if "$match" in first else [{}]
        rest = stages[1:] if "$match" in first else stages
        for stage in rest:
            if "$sort" in stage and sort is None:
                sort = stage["$sort"]
            elif "$limit" in stage:
                limit = stage["$limit"]
                break
            elif "$skip" not in stage and "$sort" not in stage:
                break
    else:
        return None
    query: dict[str, Any] = {
        "filters": filters,
        "sort": dict(sort) if sort else None,
        "limit": limit or None,
    }
    if name == "aggregate" and joins:
        query["joins"] = joins
    return query


def call_site() -> str:
    """The first frame of a service's own code that led here (else of the project's)."""
    stack = traceback.extract_stack()
    for frame in reversed(stack):
        if frame.filename.startswith(_SERVICES):
            return f"{os.path.relpath(frame.filename, _PROJECT)}:{frame.lineno} {frame.name}"
    for frame in reversed(stack):
        if frame.filename.startswith(str(_PROJECT)) and not frame.filename.startswith(_SKIP):
            return f"{os.path.relpath(frame.filename, _PROJECT)}:{frame.lineno} {frame.name}"
    return "?"


class CommandRecorder(monitoring.CommandListener):
    """Counts every command by service, command and collection; optionally logs each query.

    PyMongo calls `started` synchronously in the task that sends the command, so the stack
    it sees is the caller's (that is how the call site is found).
    """

    def __init__(self, service: str, log_dir: Path | None = None) -> None:
        self.service = service
        self.log_dir = log_dir
        self._log: IO[str] | None = None
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        collection = command_collection(name, event.command)
        DB_COMMANDS.labels(self.service, name, collection).inc()
        if self.log_dir is None or name in UNRECORDED:
            return
        query = command_query(name, event.command) or {}
        record = {
            "service": self.service,
            "database": event.database_name,
            "command": name,
            "collection": collection,
            **query,
            "site": call_site(),
        }
        line = json.dumps(record, default=str) + "\n"  # ASCII: one record per line, always
        with self._lock:
            if self._log is None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                path = self.log_dir / f"{self.service}-{os.getpid()}.jsonl"
                self._log = path.open("a", encoding="utf-8", buffering=1)
            self._log.write(line)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def mongo_client(
    url: str, *, service: str = "tool", command_log_dir: Path | None = None
) -> AsyncMongoClient[Document]:
    """A client that returns timezone-aware datetimes, fails fast when the server is away, and
    counts (and, with `command_log_dir`, records) every command it sends as `service`."""
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        uuidRepresentation="standard",
        event_listeners=[CommandRecorder(service, command_log_dir)],
    )


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """True when the database answers."""
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


T = TypeVar("T")
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


Outcomes = Sequence[BaseException | None] | None
"""What a coalesced write says of its items: None (all written), or one entry per item, in
order, None for an item written and the exception for one that was not."""


class Coalesced(Generic[T]):
    """Writes asked for while one is under way go together in the next: `write` gets every
    item asked for meanwhile (at most `most`), so under load an item costs a share of a round
    trip, and alone it costs one, sent at once. Each caller returns once its item is written,
    or raises why it was not (the item's own failure, if `write` names one; else what the
    write raised); a caller that is cancelled leaves its item to be written.

    A write is bounded by `limit` seconds (the driver sets no timeout): one that hangs on a
    half-open connection fails its callers instead of holding every later item behind it.
    If the sender itself is cancelled (a service stopping), every caller still waiting is
    cancelled with it: none is left waiting for a write that will not come."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Outcomes]],
        *,
        most: int = 500,
        limit: float = 30.0,
    ) -> None:
        self.write = write
        self.most = most
        self.limit = limit
        self.queued: list[tuple[T, asyncio.Future[None]]] = []
        self.sender: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self.queued.append((item, done))
        if self.sender is None or self.sender.done():
            self.sender = loop.create_task(self._send_all())
        await done

    async def _send_all(self) -> None:
        while self.queued:
            batch = self.queued[: self.most]
            del self.queued[: self.most]
            try:
                async with asyncio.timeout(self.limit):
                    outcomes = await self.write([item for item, _ in batch])
            except Exception as exc:  # each waiter gets the failure; nothing is left waiting
                _settle(batch, [exc] * len(batch))
            except BaseException:
                _settle(batch + self.queued, None)
                self.queued.clear()
                raise
            else:
                _settle(batch, list(outcomes or ()))


def _settle(
    batch: Sequence[tuple[object, asyncio.Future[None]]],
    outcomes: Sequence[BaseException | None] | None,
) -> None:
    """Tell each waiter its item's outcome (None for outcomes: cancel them all)."""
    for number, (_, done) in enumerate(batch):
        if done.done():
            continue
        failure = outcomes[number] if outcomes is not None and number < len(outcomes) else None
        if outcomes is None:
            done.cancel()
        elif failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)
