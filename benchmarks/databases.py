"""Benchmark: the MongoDB-wire servers that install here, measured by one script.

    .venv/bin/python -m benchmarks.databases [--candidates nx-27017,ferretdb-sqlite,ferretdb-pg]
        [--sizes 1000,30000,300000] [--budget 300]

Starts each candidate itself on 127.0.0.1 (free port, data in a temporary folder, removed
after): nx-27017 and FerretDB on SQLite as `make deps` installs them, FerretDB on PostgreSQL 15
(Debian's `postgresql` package, a throw-away cluster run as the `postgres` user when we are
root). The same PyMongo script then measures, for each:
  - isolation: 100 concurrent `$inc` on one document (lost updates), and 20 racers on a
    conditional `update_one` over 20 rounds (rounds with other than one winner);
  - `find_one` by `_id`, `find_one` on a unique indexed field and a `find` on two fields of
    a compound index, p50/p95, at each size of a
    collection of ~400-byte documents; a candidate whose loading or lookups exceed `--budget`
    seconds stops there ("too slow at N");
  - `insert_many` of 32 documents, GridFS upload + download of 1 MB with metadata (a datetime
    in it, as intake stores), and the bare insert rate (one `insert_one` at a time);
  - one outbox step's writes (no publish): pointer insert + update + pointer delete, against
    the inline scheme's update + settle (shared.outbox);
  - the server's resident memory (with its children) at the largest size reached.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from tools.devstack import embedded_command, free_port, port_open, stop_process, wait_for

Doc = dict[str, Any]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CANDIDATES = ("nx-27017", "ferretdb-sqlite", "ferretdb-pg")
PAD = "x" * 330  # with the other fields, ~400 bytes of BSON


@dataclass
class Result:
    name: str
    lost_incs: str = "–"
    racing_rounds: str = "–"
    by_id: dict[int, str] = field(default_factory=dict)
    two_fields: dict[int, str] = field(default_factory=dict)
    one_field: dict[int, str] = field(default_factory=dict)
    insert_many_32: str = "–"
    gridfs: str = "–"
    insert_rate: str = "–"
    rss_mb: str = "–"
    outbox: str = "–"
    note: str = ""


class TooSlow(Exception):
    pass


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20) if len(samples) > 1 else samples * 19
    return f"{statistics.median(samples) * 1000:.1f} / {q[18] * 1000:.1f}"


def _rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants, in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            ppid, pgid = int(stat[1]), int(stat[2])
            if int(entry.name) == pid or pgid == pid or ppid == pid:
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
    return total / 1024


@contextmanager
def _server(kind: str) -> Iterator[tuple[str, int]]:
    """Start candidate `kind` in a temporary folder; yield its URL and its process group."""
    home = Path(tempfile.mkdtemp(prefix=f"motcua-bench-{kind}-"))
    procs: list[subprocess.Popen[bytes]] = []
    pg_data: Path | None = None
    run_as: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    try:
        port = free_port()
        if kind == "ferretdb-pg":
            pg_data, pg_port = home / "pg", free_port()
            pg_data.mkdir()
            if run_as:
                shutil.chown(home, "postgres")
                shutil.chown(pg_data, "postgres")
            subprocess.run(
                [*run_as, str(PG_BIN / "initdb"), "-D", str(pg_data), "-A", "trust", "-U", "pg"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            subprocess.run(
                [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(pg_data), "-l", str(pg_data / "log"),
                 "-o", f"-p {pg_port} -k {pg_data} -c listen_addresses=127.0.0.1", "-w", "start"],
                check=True,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            sqlite_cmd, _ = embedded_command("ferretdb", home, port)
            cmd = [c for c in sqlite_cmd if not c.startswith(("--handler", "--sqlite-url"))]
            postgres = f"postgres://pg@127.0.0.1:{pg_port}/postgres"
            cmd += ["--handler=postgresql", f"--postgresql-url={postgres}"]
        else:
            cmd, _ = embedded_command("nx-27017" if kind == "nx-27017" else "ferretdb", home, port)
        log = home / "server.out"
        proc = subprocess.Popen(
            cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        procs.append(proc)
        wait_for(lambda: port_open(port), kind, 60, proc, log)
        yield f"mongodb://127.0.0.1:{port}/", proc.pid
    finally:
        for p in procs:
            stop_process(p)
        if pg_data is not None:
            subprocess.run(
                [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(pg_data), "-m", "fast", "stop"],
                check=False,
                stdout=subprocess.DEVNULL,
            )
        shutil.rmtree(home, ignore_errors=True)


async def _timed(
    n: int, call: Callable[[int], Awaitable[object]], deadline: float = float("inf")
) -> list[float]:
    samples = []
    for i in range(n):
        if time.monotonic() > deadline:
            raise TooSlow(f"past the budget after {i} of {n}")
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


async def _isolation(db: AsyncDatabase[Doc], result: Result) -> None:
    counter = db["counter"]
    await counter.insert_one({"_id": 1, "n": 0})
    await asyncio.gather(*(counter.update_one({"_id": 1}, {"$inc": {"n": 1}}) for _ in range(100)))
    doc = await counter.find_one({"_id": 1})
    result.lost_incs = str(100 - int((doc or {}).get("n", 0)))
    races = db["races"]
    bad = 0
    for round_ in range(20):
        await races.insert_one({"_id": round_, "state": "open"})
        outcomes = await asyncio.gather(
            *(
                races.update_one({"_id": round_, "state": "open"}, {"$set": {"state": f"r{i}"}})
                for i in range(20)
            )
        )
        bad += sum(o.modified_count for o in outcomes) != 1
    result.racing_rounds = f"{bad} / 20"


def _doc(i: int) -> Doc:
    return {
        "_id": f"d{i:07d}",
        "k": f"k{i:07d}",
        "a": i % 97,
        "b": i % 101,
        "at": datetime.now(UTC),
        "pad": PAD,
    }


async def _lookups(
    coll: AsyncCollection[Doc], sizes: list[int], budget: float, result: Result
) -> None:
    await coll.create_index([("a", 1), ("b", 1)])
    await coll.create_index([("k", 1)])
    deadline = time.monotonic() + budget
    loaded = 0
    for size in sizes:
        while loaded < size:
            batch = [_doc(i) for i in range(loaded, min(size, loaded + 1000))]
            await coll.insert_many(batch, ordered=False)
            loaded += len(batch)
            if time.monotonic() > deadline:
                raise TooSlow(f"too slow at {size:,} (loaded {loaded:,} in {budget:.0f}s)")
        rnd = random.Random(size)
        ids = [f"d{rnd.randrange(size):07d}" for _ in range(200)]
        pairs = [(rnd.randrange(97), rnd.randrange(101)) for _ in range(50)]
        returned: list[int] = []

        async def one(i: int, ids: list[str] = ids) -> None:
            await coll.find_one({"_id": ids[i]})

        async def key(i: int, ids: list[str] = ids) -> None:
            await coll.find_one({"k": "k" + ids[i][1:]})

        async def two(
            i: int, pairs: list[tuple[int, int]] = pairs, returned: list[int] = returned
        ) -> None:
            a, b = pairs[i]
            returned.append(len(await coll.find({"a": a, "b": b}).to_list()))

        try:
            result.by_id[size] = _ms(await _timed(200, one, deadline))
            result.one_field[size] = _ms(await _timed(200, key, deadline))
            two_fields = await _timed(50, two, deadline)
        except TooSlow as exc:
            raise TooSlow(f"too slow at {size:,} (lookups {exc})") from None
        result.two_fields[size] = f"{_ms(two_fields)} ({statistics.mean(returned):.0f} docs)"


async def _writes(db: AsyncDatabase[Doc], result: Result) -> None:
    many = db["many"]
    samples = await _timed(
        30, lambda r: many.insert_many([_doc(r * 100 + i) for i in range(32)], ordered=False)
    )
    result.insert_many_32 = _ms(samples)
    single = db["single"]
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < 3:
        await single.insert_one({"_id": count, "at": datetime.now(UTC), "pad": PAD})
        count += 1
    result.insert_rate = f"{count / (time.perf_counter() - started):.0f}/s"


async def _outbox(db: AsyncDatabase[Doc], result: Result) -> None:
    """One step's writes (no publish) by the pointer scheme, then by the inline one."""
    from shared.outbox import Outbox, inline_set
    from tests.factories import submitted_event

    async def nothing(event: object) -> None:
        pass

    steps = db["steps"]
    outbox = Outbox(db, nothing, service="bench", sources=[steps], inline=[steps])
    await steps.insert_many([{"_id": str(i), "v": 0, "outbox": []} for i in range(100)])

    async def pointer(i: int) -> None:
        events = [submitted_event()]
        await outbox.expect(steps, str(i), events)
        await steps.update_one({"_id": str(i), "v": 0}, {"$set": {"v": 1}})
        await outbox.flush(events)

    async def inline(i: int) -> None:
        events = [submitted_event()]
        loaded = {"_id": str(i), "v": 1, "outbox": []}
        changed = {"v": 2, **inline_set(loaded, events)}
        await steps.update_one({"_id": str(i), "v": 1}, {"$set": changed})
        await outbox.settle(steps, str(i), events)

    by_pointer, by_inline = await _timed(100, pointer), await _timed(100, inline)
    result.outbox = f"{_ms(by_pointer)} (3 trips) · {_ms(by_inline)} (2 trips)"


async def _gridfs(db: AsyncDatabase[Doc], result: Result) -> None:
    from gridfs import AsyncGridFSBucket

    bucket = AsyncGridFSBucket(db)
    data = os.urandom(1 << 20)
    now = datetime.now(UTC)  # BSON keeps milliseconds
    metadata = {
        "document_type": "ct01",
        "uploaded_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
    }
    try:
        started = time.perf_counter()
        file_id = await bucket.upload_from_stream("scan.pdf", data, metadata=metadata)
        up = time.perf_counter() - started
        stream = await bucket.open_download_stream(file_id)
        back = await stream.read()
        total = time.perf_counter() - started
        kept = stream.metadata or {}
        same = back == data and kept.get("uploaded_at") == metadata["uploaded_at"]
        dated = isinstance(stream.upload_date, datetime)
        note = "" if same and dated else " (metadata or uploadDate changed)"
        result.gridfs = f"{up * 1000:.0f} + {(total - up) * 1000:.0f} ms{note}"
    except (PyMongoError, TypeError, ValueError) as exc:
        result.gridfs = f"fails: {str(exc)[:60]}"


async def measure(kind: str, sizes: list[int], budget: float) -> Result:
    result = Result(kind)
    if kind == "ferretdb-pg" and not (PG_BIN / "initdb").exists():
        result.note = "PostgreSQL 15 missing: MOTCUA_PROVISION_ALL_DATABASES=1 make deps"
        return result
    with _server(kind) as (url, pid):
        client: AsyncMongoClient[Doc] = AsyncMongoClient(url, tz_aware=True)
        db = client["bench"]
        try:
            await _isolation(db, result)
            await _writes(db, result)
            await _gridfs(db, result)
            await _outbox(db, result)
            try:
                await _lookups(db["docs"], sizes, budget, result)
            except TooSlow as exc:
                result.note = str(exc)
            result.rss_mb = f"{_rss_mb(pid):.0f}"
        finally:
            await client.close()
    return result


def table(results: list[Result], sizes: list[int]) -> str:
    head = ["candidate", "lost of 100 `$inc`", "racing rounds ≠ 1 winner"]
    head += [f"`_id` p50/p95 ms @{s:,}" for s in sizes]
    head += [f"indexed key p50/p95 ms @{s:,}" for s in sizes]
    head += [f"2-field find p50/p95 ms @{s:,}" for s in sizes]
    head += ["insert_many 32 p50/p95 ms", "GridFS 1 MB up + down", "bare inserts"]
    head += ["outbox step p50/p95 ms: pointer · inline", "RSS MB", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r.name, r.lost_incs, r.racing_rounds]
        row += [r.by_id.get(s, "–") for s in sizes] + [r.one_field.get(s, "–") for s in sizes]
        row += [r.two_fields.get(s, "–") for s in sizes]
        row += [r.insert_many_32, r.gridfs, r.insert_rate, r.outbox, r.rss_mb, r.note]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.databases")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--sizes", default="1000,30000,300000")
    parser.add_argument("--budget", type=float, default=300, help="seconds per candidate")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = []
    for kind in args.candidates.split(","):
        if kind not in CANDIDATES:
            parser.error(f"unknown candidate {kind!r}; choose among {CANDIDATES}")
        started = time.monotonic()
        results.append(asyncio.run(measure(kind, sizes, args.budget)))
        print(f"[bench] {kind}: {time.monotonic() - started:.0f}s", flush=True)
        print(table(results[-1:], sizes).splitlines()[-1], flush=True)  # a row as it comes
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores\n")
    print(table(results, sizes))


if __name__ == "__main__":
    main()
