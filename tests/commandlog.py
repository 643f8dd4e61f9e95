"""Reads the command log the services write (MOTCUA_COMMAND_LOG_DIR) and checks each query
against the indexes its service declares, the way MongoDB's `notablescan` would refuse it.

The rule (COMMON to every service): a query is served when its filter names `_id`, or names
the first key of a declared index of its collection (the index's next keys may then serve the
sort); a sort must be served by `_id` or by an index whose keys before the sort's are all named
by the filter; an empty filter is a collection scan, refused unless it sorts on the first key of
an index with a limit.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import IndexModel

QUERIES = frozenset({"find", "count", "distinct", "delete", "update", "findAndModify", "aggregate"})
IndexKeys = list[tuple[str, ...]]
Declarations = Mapping[str, Mapping[str, IndexKeys]]
"""service → collection → the key names of each declared index."""


@dataclass(frozen=True)
class Unserved:
    service: str
    collection: str
    keys: tuple[str, ...]
    sort: tuple[str, ...]
    site: str

    def __str__(self) -> str:
        keys = ",".join(self.keys) or "(no filter)"
        sort = f" sort {','.join(self.sort)}" if self.sort else ""
        return f"{self.service} {self.collection} {keys}{sort} → {self.site}"


def index_keys(models: Sequence[IndexModel]) -> IndexKeys:
    return [tuple(model.document["key"].keys()) for model in models]


def declared(service: str) -> Mapping[str, IndexKeys] | None:
    """The `INDEXES` of `services/<service>/store.py` as key names; None if it declares none."""
    module = importlib.import_module(f"services.{service}.store")
    indexes = getattr(module, "INDEXES", None)
    if indexes is None:
        return None
    return {collection: index_keys(models) for collection, models in indexes.items()}


def records(folder: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)


def _branches(query: Mapping[str, Any]) -> list[set[str]]:
    """The sets of field names each alternative of a filter names (`$or` splits it)."""
    names = {k for k in query if not k.startswith("$")}
    for clause in query.get("$and", []):
        for branch in _branches(clause):
            names |= branch
    alternatives = query.get("$or")
    if not alternatives:
        return [names]
    return [names | b for clause in alternatives for b in _branches(clause)]


def _sort_served(sort: Sequence[str], names: set[str], indexes: IndexKeys) -> bool:
    if not sort or sort[0] == "_id" or "_id" in names:
        return True
    for keys in indexes:
        for start in range(len(keys)):
            # The index's keys before the sort's are all named by the filter (see the break).
            if tuple(keys[start : start + len(sort)]) == tuple(sort):
                return True
            if keys[start] not in names:
                break
    return False


def served(
    names: set[str], sort: Sequence[str], limit: Any, indexes: IndexKeys, *, command: str = "find"
) -> bool:
    """Whether a filter naming `names`, sorted by `sort`, is served by `_id` or `indexes`."""
    if not names:
        if command == "count":  # a bare `count` reads the collection's metadata, not its data
            return True
        return bool(
            sort and limit and (sort[0] == "_id" or any(k[:1] == (sort[0],) for k in indexes))
        )
    if "_id" not in names and not any(keys[0] in names for keys in indexes if keys):
        return False
    return _sort_served(sort, names, indexes)


def unserved(log: Iterable[Mapping[str, Any]], declarations: Declarations) -> list[Unserved]:
    """Every distinct query of `log` that no declared index serves (services absent from
    `declarations` are left to the caller, which reports them once)."""
    found: dict[Unserved, None] = {}
    for record in log:
        if record.get("command") not in QUERIES:
            continue
        service, collection = str(record["service"]), str(record["collection"])
        sort = tuple((record.get("sort") or {}).keys())
        if service not in declarations:
            continue
        indexes = declarations[service].get(collection, [])
        for query in record.get("filters") or [{}]:
            for names in _branches(query):
                if served(
                    names, sort, record.get("limit"), indexes, command=str(record["command"])
                ):
                    continue
                found[
                    Unserved(
                        service, collection, tuple(sorted(names)), sort, str(record.get("site"))
                    )
                ] = None
    return list(found)


def report(problems: Sequence[Unserved], missing: Iterable[str] = ()) -> str:
    lines = [f"{s}: services/{s}/store.py declares no INDEXES" for s in missing]
    lines += [str(p) for p in problems]
    return "queries no declared index serves:\n  " + "\n  ".join(lines)
