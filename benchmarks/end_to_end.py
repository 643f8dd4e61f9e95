"""Benchmark: dossiers end to end through the four services, as a portal and officers drive them.

    .venv/bin/python -m benchmarks.end_to_end [--count 300] [--concurrency 50]
        [--procedure 1.004194,1.004222] [--history 0,10000,100000] [--timeout 1800]
        [--amqp-url URL --mongodb-url URL]

Starts RabbitMQ and the database (tools.devstack, a fresh test stack; or uses the URLs given),
a loopback SMTP sink and SMS/Zalo stubs, and the four services as OS processes. Each dossier
goes the whole path over HTTP: its documents uploaded, submitted, `dossier.assigned` awaited (our
own queue on the events exchange), the assigned officer (and on a two-level procedure the unit's
chief) takes the workflow's steps to approval, and the citizen's `notification.sent` of the
decision awaited. Procedures are taken in turn; each gets its own lines.

Prints, as markdown ready for README: dossiers/s, officer transitions/s, p50/p95/p99 of each leg,
peak RSS of each process (VmHWM), the database commands per dossier and per step (each
service's `motcua_db_commands_total`; "n/a" where a service does not export it), and, on the
same broker and database, the bare broker (publish with confirms + consume and ack of the same
event bodies through a durable quorum queue) and the bare database (insert_one, find_one by
key of a stored dossier's size), with our figures as a ratio of each.

`--history K[,K2...]` first loads past, finished dossiers straight into the stores by cloning
real ones (benchmarks/history.py), then measures at each level on the same stack, adding
history between levels, and prints the curve of each leg against stored history.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop

from benchmarks import history, probes
from benchmarks.journeys import (
    LEG_ASSIGNED,
    LEG_NOTIFIED,
    LEG_SUBMIT,
    LEG_TOTAL,
    LEG_UPLOAD,
    Driver,
    Journey,
    Lanes,
    Plan,
    Tokens,
    Watch,
    finish_all,
    leg_of,
    plans,
    run_many,
    watch_exchange,
)
from shared.storage import mongo_client
from tests.e2e.harness import SERVICES, Services, start_smtp
from tests.httpstub import http_stub
from tools.devstack import free_port, stack

NA = "n/a"
LANE_CONNECTIONS = 6  # connections per HTTP client of the driver (journeys.Lanes)
WIDE = 1000  # the bare broker's second publishing window (confirms awaited this many at once)
# While the templates of history are made, a second audit replica chains and seals within
# seconds (the defaults are 10 s and an hour), so the snapshot holds seals too; it is stopped
# before anything is measured, and the measured audit keeps its defaults throughout.
TEMPLATE_AUDIT_ENV = {
    "MOTCUA_AUDIT_CHAIN_GRACE_SECONDS": "0.5",
    "MOTCUA_AUDIT_SETTLE_INTERVAL_SECONDS": "0.5",
    "MOTCUA_AUDIT_SEAL_INTERVAL_SECONDS": "2",
}


def out(line: str = "") -> None:
    print(line, flush=True)


def note(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def ms(value: float) -> str:
    return f"{value * 1000:.0f}" if value >= 0.01 else f"{value * 1000:.1f}"


@dataclass
class Level:
    """One measurement: `count` dossiers at `concurrency`, with `history` past ones stored."""

    history: int
    wall: float
    journeys: list[Journey]
    commands: Counter[probes.Key] | None
    events: int
    steps: dict[str, list[Counter[probes.Key]]] | None = None  # each time a step was taken
    idle_per_second: dict[str, float] | None = None
    idle_detail: str = ""  # what the idle window's commands were
    chief_page_ms: list[float] = field(default_factory=list)  # a unit chief's first queue page
    rss: dict[str, float | None] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # cores used during the load
    machine: tuple[float, float] | None = None  # cores busy, cores stolen by the host
    bare_gets: float | None = None  # the bare database's find_one by key/s after this level

    @property
    def ok(self) -> list[Journey]:
        return [j for j in self.journeys if not j.error]

    def legs(self, procedure: str | None = None) -> dict[str, list[float]]:
        merged: dict[str, list[float]] = {}
        for journey in self.ok:
            if procedure is None or journey.procedure == procedure:
                for leg, values in journey.legs.items():
                    merged.setdefault(leg, []).extend(values)
        return merged


def leg_order(plan_list: list[Plan]) -> list[str]:
    actions: list[str] = []
    for plan in sorted(plan_list, key=lambda p: -len(p.moves)):
        for move in plan.moves:
            if leg_of(move.action) not in actions:
                actions.append(leg_of(move.action))
    return [LEG_UPLOAD, LEG_SUBMIT, LEG_ASSIGNED, *actions, LEG_NOTIFIED, LEG_TOTAL]


@dataclass
class Bench:
    args: argparse.Namespace
    amqp_url: str
    mongodb_url: str
    database: str
    prefix: str
    db_pid: int | None
    plan_list: list[Plan] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    services: Services | None = None
    watch: Watch | None = None
    client: Any = None  # the benchmark's own database client, while it runs
    bare: tuple[dict[str, Any], int] | None = None  # the bare database's document and count

    @property
    def urls(self) -> dict[str, str]:
        assert self.services
        return {name: self.services.url(name) for name in SERVICES}

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> None:
        args = self.args
        self.plan_list = plans(args.procedure.split(","))
        targets = [int(k) for k in str(args.history).split(",")]
        controller, mailbox = start_smtp()
        zns_ok = (200, {"error": 0, "data": {"msg_id": "z"}})
        logs = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
        with http_stub() as sms, http_stub(zns_ok) as zalo:
            env = {
                "MOTCUA_AMQP_URL": self.amqp_url,
                "MOTCUA_MONGODB_URL": self.mongodb_url,
                "MOTCUA_DATABASE_PREFIX": self.prefix,
                "MOTCUA_NOTIFY_SMTP_PORT": str(mailbox.port),
                "MOTCUA_NOTIFY_SMS_GATEWAY_URL": f"{sms.url}/sms",
                "MOTCUA_NOTIFY_ZALO_BASE_URL": zalo.url,
                "MOTCUA_LOG_LEVEL": "WARNING",
                # Every client here is 127.0.0.1: the rate limit would refuse the load.
                "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "100000000",
                "MOTCUA_INTAKE_RATE_LIMIT_BURST": "100000000",
            }
            self.services = Services(env=env, logs=logs)
            note(f"services' logs in {logs}")
            try:
                await self._run(targets)
            finally:
                self.services.stop_all()
                controller.stop()
                mailbox.clear()

    async def _run(self, targets: list[int]) -> None:
        assert self.services
        args = self.args
        client = self.client = mongo_client(self.mongodb_url)
        watch = self.watch = Watch()
        connection = await watch_exchange(self.amqp_url, watch)
        tokens = Tokens()
        try:
            wants_history = any(targets)
            for name in SERVICES:
                self.services.start(name)
            for name in SERVICES:
                await asyncio.to_thread(self.services.wait_ready, name)
            await tokens.mint_all()
            async with contextlib.AsyncExitStack() as clients:
                intake = await self._lanes(clients, "intake")
                review = await self._lanes(clients, "review")
                driver = Driver(intake, review, watch, tokens, args.step_timeout)
                cloner = await self._templates(driver, client) if wants_history else None
                if cloner is None and args.warmup:  # the templates warmed everything up
                    note(f"warming up with {args.warmup} dossiers (not measured)")
                    _, warm = await run_many(driver, self.plan_list, args.warmup, 4)
                    await finish_all(driver, self.plan_list, warm, 4)
                stored = 0
                for target in targets:
                    if target > stored:
                        assert cloner is not None
                        stored += await self._load_history(client, cloner, target - stored)
                    level = await self._measure(driver, stored)
                    self.levels.append(level)
                    self._print_level(level)
                    if len(self.levels) == 1:
                        await self._baselines(client, watch, level)
                    else:  # the machine's speed now, on an empty collection (not history's)
                        _, level.bare_gets, _ = await self._bare_database(client)
                    if target != targets[-1]:  # measured dossiers become finished history
                        await finish_all(driver, self.plan_list, level.journeys, 10)
                if len(self.levels) > 1:
                    self._print_curve()
        finally:
            await connection.close()
            await client.close()

    async def _lanes(self, clients: contextlib.AsyncExitStack, service: str) -> Lanes:
        """Enough small HTTP clients to `service` for the concurrency (journeys.Lanes)."""
        count = math.ceil((self.args.concurrency + 10) / LANE_CONNECTIONS)
        limits = httpx.Limits(max_connections=LANE_CONNECTIONS)
        url = self.urls[service]
        return Lanes(
            [
                await clients.enter_async_context(
                    httpx.AsyncClient(base_url=url, timeout=120, limits=limits)
                )
                for _ in range(count)
            ]
        )

    async def _templates(self, driver: Driver, client: Any) -> history.Cloner:
        """Real dossiers run to the end and snapshotted: what history is cloned from."""
        assert self.services
        args = self.args
        shared = history.preexisting(await history.dump(client, self.prefix))
        sealer = "audit#2"
        self.services.start(sealer, **TEMPLATE_AUDIT_ENV)
        try:
            await asyncio.to_thread(self.services.wait_ready, sealer)
        except AssertionError as exc:
            self.services.procs.pop(sealer, None)
            note(f"no seals in the templates: a second audit did not start ({str(exc)[-300:]})")
        note(f"running {args.templates} template dossiers to the end")
        _, journeys = await run_many(driver, self.plan_list, args.templates, 4)
        failed = [j.error for j in journeys if j.error]
        if failed:
            raise RuntimeError(f"template dossiers failed: {failed[:3]}")
        await finish_all(driver, self.plan_list, journeys, 4)
        failed = [j.error for j in journeys if j.error]
        if failed:
            raise RuntimeError(f"template dossiers could not be finished: {failed[:3]}")
        # Settled like finished work (audit chains past its grace): nothing left in live tails.
        await self._quiet(client, stable=self.args.settle_seconds)
        snapshot = await history.take_snapshot(
            client, self.prefix, [j.code for j in journeys], shared
        )
        if sealer in self.services.procs:
            self.services.kill(sealer, signal.SIGTERM)
        out(f"### History templates ({history.stamp()})")
        out()
        out(
            f"{len(journeys)} real dossiers run to the end (and handed over); per dossier "
            f"{len(snapshot.templates) / len(journeys):.1f} documents are cloned:"
        )
        out()
        out("| collection | template documents | left out (singletons) |")
        out("|---|---|---|")
        for where in sorted(set(snapshot.per_collection) | set(snapshot.left_out)):
            out(
                f"| {where[0].removeprefix(self.prefix)}.{where[1]} | "
                f"{snapshot.per_collection[where]} | {snapshot.left_out[where]} |"
            )
        out()
        return history.Cloner(snapshot)

    async def _quiet(self, client: Any, stable: float = 3.0, limit: float = 60.0) -> None:
        """Until no collection's count changed for `stable` seconds (chaining, seals...)."""
        await asyncio.sleep(stable)
        last = await history.counts(client, self.prefix)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            await asyncio.sleep(stable)
            now = await history.counts(client, self.prefix)
            if now == last:
                return
            last = now

    async def _load_history(self, client: Any, cloner: history.Cloner, dossiers: int) -> int:
        # What the measured dossiers set off is done (audit chains after a grace of 10 s).
        await self._quiet(client, stable=self.args.settle_seconds)
        before = await history.counts(client, self.prefix)
        events = self.watch_count()
        note(f"loading {dossiers} past dossiers")
        report = await history.load(client, cloner, dossiers, budget=self.args.history_budget)
        after = await history.counts(client, self.prefix)
        await asyncio.sleep(5)  # would the services react to what was loaded?
        settled = await history.counts(client, self.prefix)
        events = self.watch_count() - events
        rounds = report.dossiers // max(1, len(cloner.snapshot.codes))
        out(f"### History load: {report.dossiers} past dossiers ({history.stamp()})")
        out()
        out(
            f"{report.documents} documents in {report.seconds:.1f} s "
            f"({report.rate:.0f} documents/s, {report.dossiers / report.seconds:.0f} dossiers/s)"
            + (
                f"; {report.deferred} secondary indexes of these collections built after the "
                f"documents were in ({report.index_seconds:.1f} s of it)"
                if report.deferred
                else ""
            )
        )
        out()
        out(f"Events the services published meanwhile (must be 0): {events}")
        if report.capped:
            out()
            out(f"**{report.capped}**")
        out()
        out(
            "Collections that hold no document of a finished dossier are live ones: they must "
            "not grow with history (a change there is the services' own, during the load)."
        )
        out()
        out("| collection | live? | before | after load | expected growth | 5 s later |")
        out("|---|---|---|---|---|---|")
        per = cloner.snapshot.per_collection
        for where in sorted(set(before) | set(after)):
            expected = per[where] * rounds
            was, now, later = before.get(where, 0), after.get(where, 0), settled.get(where, 0)
            if where[1].endswith(".chunks"):
                live, flag = "GridFS chunks of the files", ""
            elif per[where] == 0:
                live = "live"
                flag = f" (grew {now - was:+d} by itself)" if now != was else ""
                flag += f" (then {later - now:+d})" if later != now else ""
            else:
                live = ""
                flag = " **≠**" if now - was != expected else ""
                flag += " **moved**" if later != now else ""
            out(
                f"| {where[0].removeprefix(self.prefix)}.{where[1]} | {live} | "
                f"{was} | {now}{flag} | {expected} | {later} |"
            )
        out()
        return report.dossiers

    async def _measure(self, driver: Driver, stored: int) -> Level:
        args = self.args
        assert self.services
        note(f"measuring {args.count} dossiers at concurrency {args.concurrency}, {stored} stored")
        before = await probes.settle(self.urls)
        events = driver.watch.count
        pids = self._pids()
        cpu_before = {name: probes.cpu_seconds(pid) for name, pid in pids.items()}
        ticks = probes.machine_ticks()
        wall, journeys = await run_many(driver, self.plan_list, args.count, args.concurrency)
        machine = probes.machine_share(ticks, probes.machine_ticks())
        cpu = {
            name: (now - then) / wall
            for name, pid in pids.items()
            if (now := probes.cpu_seconds(pid)) is not None
            and (then := cpu_before[name]) is not None
        }
        await asyncio.sleep(1)
        after = await probes.settle(self.urls)
        commands = probes.diff(after, before) if after is not None and before else None
        level = Level(stored, wall, journeys, commands, driver.watch.count - events)
        level.rss = {name: probes.peak_rss_mb(pid) for name, pid in pids.items()}
        level.rss.pop("benchmark client", None)
        level.cpu = cpu
        level.machine = machine
        if after is not None and args.probe:
            level.steps = await self._probe(driver)
        level.chief_page_ms = await self._chief_pages(driver)
        if after is not None:
            level.idle_per_second, level.idle_detail = await self._idle(args.idle_seconds)
        return level

    async def _chief_pages(self, driver: Driver, rounds: int = 10) -> list[float]:
        """Each unit chief's first queue page (`GET /v1/tasks`), `rounds` times: what a chief
        waits for at the start of the day, however much is stored."""
        times: list[float] = []
        chiefs = sorted(set(driver.tokens.chief_of.values()))
        for _ in range(rounds):
            for chief in chiefs:
                started = time.perf_counter()
                answer = await driver.review.get(
                    "/v1/tasks", headers={"Authorization": f"Bearer {driver.tokens.bearer[chief]}"}
                )
                times.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    note(f"a chief's queue answered {answer.status_code}: {answer.text[:200]}")
        return times

    async def _probe(self, driver: Driver) -> dict[str, list[Counter[probes.Key]]]:
        """A few dossiers one at a time, the counters diffed around each step (once every
        service has gone quiet, so what a step set off in other services counts too)."""
        steps: dict[str, list[Counter[probes.Key]]] = {}
        journeys: list[Journey] = []
        for i in range(self.args.probe):
            plan = self.plan_list[i % len(self.plan_list)]
            last = await probes.settle(self.urls)
            assert last is not None
            mark = last

            async def hook(step: str, plan: Plan = plan) -> None:
                nonlocal mark
                if step in (LEG_ASSIGNED, LEG_NOTIFIED):
                    return  # waits, not steps: what leads to them is counted in the step before
                now = await probes.settle(self.urls)
                assert now is not None
                key = f"{plan.procedure} {step}"
                steps.setdefault(key, []).append(probes.diff(now, mark))
                mark = now

            journeys.append(await driver.run(plan, hook))
            await driver.finish(plan, journeys[-1])  # no open work left behind
        failed = [j.error for j in journeys if j.error]
        if failed:
            note(f"probe dossiers failed: {failed[:2]}")
        return steps

    async def _idle(self, seconds: float) -> tuple[dict[str, float], str]:
        # Idle once what the measured dossiers set off is done: audit chains their records
        # after a grace (10 s): about 14 commands/s for up to a minute after 300 dossiers.
        if self.client is not None:
            await self._quiet(self.client, stable=self.args.settle_seconds)
        before = await probes.settle(self.urls)
        await asyncio.sleep(seconds)
        after = await probes.db_commands(self.urls)
        assert before is not None and after is not None
        counts = probes.diff(after, before)
        per = probes.by_service(counts)
        detail = "; ".join(
            f"{name}: {probes.detail(counts, name)}" for name in SERVICES if per[name]
        )
        return {name: per[name] / seconds for name in SERVICES}, detail

    async def _bare_database(self, client: Any) -> tuple[float, float, int]:
        """The bare database (inserts/s, gets/s, document bytes) now, with the document and
        count `_baselines` chose, on a fresh collection of the same server: at a later level,
        the machine's speed then, though the server's file and caches also hold the history."""
        assert self.bare is not None
        sample, count = self.bare
        return await probes.bare_database(
            client, f"{self.prefix}bare", sample, count, self.args.concurrency
        )

    async def _baselines(self, client: Any, watch: Watch, level: Level) -> None:
        args = self.args
        count = max(200, min(level.events, 20000))
        note(f"bare broker: {count} messages; bare database: {count} documents")
        bodies = watch.bodies or [b"{}"]
        broker_rate, size = await probes.bare_broker(self.amqp_url, bodies, count, args.concurrency)
        wide_rate, _ = await probes.bare_broker(self.amqp_url, bodies, count, WIDE)
        note("bare database: the largest stored document")
        sample = await probes.largest_document(
            client, await history.collections(client, self.prefix)
        )
        note("bare database: inserts and gets")
        self.bare = (sample, count)
        inserts, gets, doc_size = await self._bare_database(client)
        level.bare_gets = gets
        ours_events = level.events / level.wall
        rate = len(level.ok) / level.wall
        out("#### Bare broker and bare database, same run, same stack")
        out()
        out("| figure | bare | Motcua | Motcua as a share of bare |")
        out("|---|---|---|---|")
        for window, bare in ((args.concurrency, broker_rate), (WIDE, wide_rate)):
            out(
                f"| broker: persistent {size:.0f}-byte events, quorum queue, acked; confirms "
                f"awaited {window} at a time | {bare:.0f} msg/s | {ours_events:.0f} events/s | "
                f"{ours_events / bare:.1%} |"
            )
        out(
            f"| database: insert_one of a {doc_size}-byte stored document | {inserts:.0f}/s | "
            f"{rate:.2f} dossiers/s | {rate / inserts:.2%} |"
        )
        if level.commands is not None:
            total = sum(level.commands.values())
            ours = total / level.wall
            both = 2 / (1 / inserts + 1 / gets)
            out(
                f"| database: find_one by key | {gets:.0f}/s | {ours:.0f} commands/s "
                f"({total / max(1, len(level.ok)):.0f} per dossier) | {ours / both:.1%} of "
                "insert+get |"
            )
        else:
            out(f"| database: find_one by key | {gets:.0f}/s | {NA} (no command counter) | {NA} |")
        out()

    # -- the report ------------------------------------------------------------------------

    def _print_level(self, level: Level) -> None:
        args = self.args
        ok = level.ok
        mix = ", ".join(
            f"{p.procedure} ×{sum(1 for j in level.journeys if j.procedure == p.procedure)}"
            for p in self.plan_list
        )
        out(
            f"### {len(level.journeys)} dossiers at concurrency {args.concurrency}, "
            f"{level.history} past dossiers stored ({history.stamp()})"
        )
        out()
        out(f"Command: `{self.command()}`; database: {self.database}; {os.cpu_count()} cores.")
        out()
        actions = sum(j.actions for j in ok)
        out("| figure | value |")
        out("|---|---|")
        out(f"| dossiers/s end to end | {len(ok) / level.wall:.2f} |")
        out(f"| officer transitions/s | {actions / level.wall:.2f} |")
        out(f"| dossiers completed / failed | {len(ok)} / {len(level.journeys) - len(ok)} |")
        out(f"| procedures (in turn) | {mix} |")
        out(f"| wall time | {level.wall:.1f} s |")
        if level.machine is not None:
            busy, stolen = level.machine
            out(
                f"| the machine during the load | {busy:.2f} of {os.cpu_count()} cores busy, "
                f"{stolen:.2f} stolen by the host |"
            )
        out(f"| events on the exchange per dossier | {level.events / max(1, len(ok)):.1f} |")
        out()
        errors = Counter(j.error[:160] for j in level.journeys if j.error)
        for error, times in errors.most_common(3):
            out(f"- failed ×{times}: {error}")
        if errors:
            out()
        out("| procedure | leg | n | p50 ms | p95 ms | p99 ms | max ms |")
        out("|---|---|---|---|---|---|---|")
        order = leg_order(self.plan_list)
        for plan in [None, *self.plan_list] if len(self.plan_list) > 1 else [None]:
            legs = level.legs(plan.procedure if plan else None)
            label = plan.procedure if plan else "all"
            for leg in order:
                values = legs.get(leg)
                if not values:
                    continue
                out(
                    f"| {label} | {leg} | {len(values)} | {ms(quantile(values, 0.5))} | "
                    f"{ms(quantile(values, 0.95))} | {ms(quantile(values, 0.99))} | "
                    f"{ms(max(values))} |"
                )
        out()
        self._print_slowest(level)
        out("| process | peak RSS (VmHWM) | CPU during the load (cores) |")
        out("|---|---|---|")
        for name in [*level.rss, "benchmark client"]:
            mb = level.rss.get(name)
            used = level.cpu.get(name)
            out(
                f"| {name} | {f'{mb:.0f} MB' if mb is not None else '-'} | "
                f"{f'{used:.2f}' if used is not None else NA} |"
            )
        out()
        self._print_commands(level)

    def _print_slowest(self, level: Level, shown: int = 3) -> None:
        """The slowest journeys leg by leg: a few stragglers stretch the wall time (and so
        lower dossiers/s) without moving any p99 of 300."""
        slowest = sorted(level.ok, key=lambda j: -sum(j.legs.get(LEG_TOTAL, [0.0])))[:shown]
        if not slowest:
            return
        first = min(j.began for j in level.journeys)
        out(f"Slowest {len(slowest)} journeys, ms per leg (the wall time was {level.wall:.1f} s):")
        out()
        for journey in slowest:
            start = f"started at {journey.began - first:.1f} s"
            legs = ", ".join(
                f"{leg} {'+'.join(ms(v) for v in values)}" for leg, values in journey.legs.items()
            )
            out(f"- {journey.code} ({journey.procedure}, {start}): {legs}")
        out()

    def _print_commands(self, level: Level) -> None:
        done = max(1, len(level.ok))
        out("| database commands per dossier (whole load, background loops included) | commands |")
        out("|---|---|")
        per = probes.by_service(level.commands) if level.commands is not None else None
        for name in SERVICES:
            out(f"| {name} | {f'{per[name] / done:.1f}' if per is not None else NA} |")
        total = f"{sum(per.values()) / done:.1f}" if per is not None else NA
        out(f"| all | {total} |")
        out()
        if level.commands is not None:
            out("| service | database commands per dossier, by command and collection |")
            out("|---|---|")
            for name in SERVICES:
                mine = Counter({k: v / done for k, v in level.commands.items() if k[0] == name})
                parts = [
                    f"{command} {collection} {value:.1f}"
                    for (_, command, collection), value in mine.most_common()
                    if value >= 0.05
                ]
                out(f"| {name} | {', '.join(parts) or 'none'} |")
            out()
        out(
            "Round trips per step: dossiers one at a time, each service's counters diffed "
            "around each step once all are quiet (what a step sets off elsewhere counts in its "
            "row; median of the times it was taken)."
        )
        out()
        out(
            "| round trips per step (one dossier at a time) | "
            + " | ".join(SERVICES)
            + " | all | the step's own service |"
        )
        out("|---|" + "---|" * (len(SERVICES) + 2))
        if level.steps is None:
            out("| " + " | ".join([NA] * (len(SERVICES) + 3)) + " |")
        else:
            owner = {LEG_UPLOAD: "intake", LEG_SUBMIT: "intake"}
            for key, samples in level.steps.items():
                service = owner.get(key.split(" ", 1)[1], "review")
                cells = [
                    f"{statistics.median(probes.by_service(c)[s] for c in samples):g}"
                    for s in SERVICES
                ]
                together = statistics.median(sum(c.values()) for c in samples)
                ordered = sorted(samples, key=lambda c: probes.by_service(c)[service])
                middle = ordered[len(ordered) // 2]
                out(
                    f"| {key} | " + " | ".join(cells) + f" | {together:g} | "
                    f"{service}: {probes.detail(middle, service)} |"
                )
        out()
        if level.idle_per_second is not None:
            idle = level.idle_per_second
            out(
                f"| idle {self.args.idle_seconds:g} s, after the load | "
                + " | ".join(SERVICES)
                + " | all |"
            )
            out("|---|" + "---|" * (len(SERVICES) + 1))
            out(
                "| database commands/s | "
                + " | ".join(f"{idle[s]:.2f}" for s in SERVICES)
                + f" | {sum(idle.values()):.2f} |"
            )
            if level.idle_detail:
                out()
                out(f"Commands of the idle window: {level.idle_detail}.")
        else:
            out(f"| idle, after the load | database commands/s: {NA} |")
            out("|---|---|")
        out()

    def _print_curve(self) -> None:
        order = leg_order(self.plan_list)
        first = self.levels[0]
        out("### Cost against stored history (p50 ms; change against the first level)")
        out()
        out(
            "| past dossiers | dossiers/s | "
            + " | ".join(order)
            + " | chief's first page p50 / max | idle commands/s | CPU ms per dossier "
            "(services, database) | bare database gets/s |"
        )
        out("|---|---|" + "---|" * (len(order) + 4))
        base = first.legs()
        for level in self.levels:
            legs = level.legs()
            cells = []
            for leg in order:
                if not legs.get(leg) or not base.get(leg):
                    cells.append(NA)
                    continue
                now, then = quantile(legs[leg], 0.5), quantile(base[leg], 0.5)
                change = f" ({(now - then) / then:+.0%})" if level is not first and then else ""
                cells.append(f"{ms(now)}{change}")
            rate = len(level.ok) / level.wall
            pages = level.chief_page_ms
            page = f"{ms(quantile(pages, 0.5))} / {ms(max(pages))}" if pages else NA
            idle = level.idle_per_second
            resting = f"{sum(idle.values()):.2f}" if idle is not None else NA
            ours = sum(level.cpu.get(name, 0.0) for name in SERVICES)
            database = level.cpu.get("database")
            per = level.wall / max(1, len(level.ok)) * 1000  # ms of wall per dossier
            theirs = f"{database * per:.0f}" if database is not None else NA
            spent = f"{ours * per:.0f}, {theirs}"
            bare = f"{level.bare_gets:.0f}" if level.bare_gets is not None else NA
            out(
                f"| {level.history} | {rate:.2f} | "
                + " | ".join(cells)
                + f" | {page} | {resting} | {spent} | {bare} |"
            )
        out()

    def _pids(self) -> dict[str, int]:
        assert self.services
        pids = {name: proc.pid for name, proc in self.services.procs.items()}
        if self.db_pid:
            pids["database"] = self.db_pid
        broker = probes.listener_pid(urllib.parse.urlparse(self.amqp_url).port or 5672)
        if broker:
            pids["broker"] = broker
        pids["benchmark client"] = os.getpid()  # with its SMTP sink and SMS/Zalo stubs
        return pids

    def watch_count(self) -> int:
        return self.watch.count if self.watch else 0

    def command(self) -> str:
        return "python -m benchmarks.end_to_end " + " ".join(sys.argv[1:])


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end")
    parser.add_argument("--count", type=int, default=300, help="dossiers per measurement")
    parser.add_argument("--concurrency", type=int, default=50, help="dossiers at once")
    parser.add_argument(
        "--procedure",
        default="1.004194,1.004222",
        help="procedure codes taken in turn (default: temporary residence, one level; "
        "permanent residence, two levels)",
    )
    parser.add_argument(
        "--history",
        default="0",
        help="past dossiers stored before measuring; a list (0,10000,100000) measures at each",
    )
    parser.add_argument("--templates", type=int, default=20, help="real dossiers history clones")
    parser.add_argument(
        "--history-budget", type=float, default=1200.0, help="seconds a history load may take"
    )
    parser.add_argument(
        "--probe", type=int, default=3, help="dossiers run one at a time for round trips per step"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="idle window for commands/s at rest"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=12.0,
        help="before loading history: no collection changed for this long",
    )
    parser.add_argument(
        "--warmup", type=int, default=10, help="dossiers run before measuring (not counted)"
    )
    parser.add_argument("--step-timeout", type=float, default=120.0, help="seconds per wait")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for everything")
    parser.add_argument("--amqp-url", default="", help="use this broker (else start one)")
    parser.add_argument("--mongodb-url", default="", help="use this database (else start one)")
    parser.add_argument("--database-prefix", default="", help="database names' prefix")
    args = parser.parse_args(argv)
    if args.templates < 1 or args.count < 1 or args.concurrency < 1:
        parser.error("--count, --concurrency and --templates must be at least 1")
    return args


@contextmanager
def infrastructure(args: argparse.Namespace) -> Iterator[tuple[str, str, str, int | None]]:
    """(amqp url, mongodb url, what the database is, its pid) given or started fresh."""
    if args.amqp_url and args.mongodb_url:
        port = urllib.parse.urlparse(args.mongodb_url).port or 27017
        yield args.amqp_url, args.mongodb_url, "given by --mongodb-url", probes.listener_pid(port)
        return
    with stack("bench", free_port(), free_port(), fresh=True) as s:
        assert s.rabbitmq and s.mongo
        pid = s.mongo.proc.pid if s.mongo.proc else None
        yield s.rabbitmq.url, s.mongo.url, s.mongo.kind, pid


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Bounded in time whatever hangs: the asyncio timeout first, then a signal to ourselves.
    watchdog = threading.Timer(args.timeout + 90, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()
    prefix = args.database_prefix or f"bench{uuid.uuid4().hex[:6]}_"
    try:
        with infrastructure(args) as (amqp_url, mongodb_url, database, pid):
            bench = Bench(args, amqp_url, mongodb_url, database, prefix, pid)
            try:
                # The client on uvloop too, as uvicorn runs the services: less of the machine
                # goes to driving the load.
                uvloop.run(asyncio.wait_for(bench.run(), args.timeout))
            except TimeoutError:
                out(f"**stopped: --timeout {args.timeout:.0f} s reached**")
                return 2
            finally:
                if args.mongodb_url:
                    asyncio.run(_drop(mongodb_url, prefix))
    except KeyboardInterrupt:
        note("stopped")
        return 130
    finally:
        watchdog.cancel()
    return 0


async def _drop(url: str, prefix: str) -> None:
    client = mongo_client(url)
    try:
        for name in await client.list_database_names():
            if name.startswith(prefix):
                await client.drop_database(name)
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(main())
