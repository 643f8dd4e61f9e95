"""One dossier's journey over HTTP, as a portal and officers take it, timed leg by leg.

Documents are uploaded, the dossier submitted, `dossier.assigned` awaited on our own queue
bound to the events exchange, then the assigned officer (and, on a two-level procedure, the
unit's chief) takes the workflow's steps to a decision, and the citizen's `notification.sent`
of that decision is awaited. The steps come from the workflow definitions themselves, so a
procedure on another workflow needs no change here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

from services.intake.openapi import example
from services.review.roster import load_roster
from services.review.settings import DEFAULT_ROSTER
from services.review.workflow import Workflow, load_all
from shared.messaging import EXCHANGE
from tests.e2e.flows import SAMPLES, token
from tests.factories import CATALOGUE

DECISIONS = ("approve",)
LEG_UPLOAD, LEG_SUBMIT, LEG_ASSIGNED = "upload", "submit", "submit→assigned"
LEG_NOTIFIED, LEG_TOTAL = "decision→notified", "total"


def leg_of(action: str) -> str:
    return f"action {action}"


@dataclass(frozen=True)
class Move:
    """One officer action on the way to a decision, and whose it is (officer or chief)."""

    action: str
    role: str


def path_to_decision(workflow: Workflow, decision: str = "approve") -> list[Move]:
    """The shortest run of officer/chief actions from the initial state to `decision`, taking
    no action that needs a reason or the citizen (breadth first over the definition)."""
    definition = workflow.definition
    usable = [
        a
        for a in definition.actions
        if a.trigger is None
        and a.reason != "required"
        and {"officer", "chief"} & set(a.roles)
        and not definition.states[a.to].terminal
    ]
    queue: deque[tuple[str, list[Move]]] = deque([(definition.initial, [])])
    seen = {definition.initial}
    while queue:
        state, moves = queue.popleft()
        for action in usable:
            if state not in action.from_states:
                continue
            role = "officer" if "officer" in action.roles else "chief"
            step = [*moves, Move(action.name, role)]
            if action.name == decision:
                return step
            if action.to not in seen:
                seen.add(action.to)
                queue.append((action.to, step))
    raise ValueError(f"workflow {workflow.name} has no way to {decision!r}")


def finishing_move(workflow: Workflow, after: str = "approve") -> Move | None:
    """The action that closes a decided dossier (handing the result over), if there is one."""
    definition = workflow.definition
    decided = next(a.to for a in definition.actions if a.name == after)
    for action in definition.actions:
        if (
            decided in action.from_states
            and definition.states[action.to].terminal
            and action.trigger is None
            and action.reason != "required"
            and "officer" in action.roles
        ):
            return Move(action.name, "officer")
    return None


@dataclass(frozen=True)
class Plan:
    """What the benchmark does with one procedure."""

    procedure: str
    body: dict[str, Any]
    moves: list[Move]
    finish: Move | None


def plans(procedures: list[str]) -> list[Plan]:
    registry = load_all()
    out = []
    for code in procedures:
        if code not in CATALOGUE.procedures:
            raise SystemExit(f"unknown procedure {code!r}")
        workflow = registry.for_new(code)
        out.append(
            Plan(
                code,
                example(CATALOGUE.procedures[code]),
                path_to_decision(workflow),
                finishing_move(workflow),
            )
        )
    return out


class Tokens:
    """Bearer tokens minted the way the tests mint them (review's `token` CLI), once each."""

    def __init__(self) -> None:
        roster = load_roster(DEFAULT_ROSTER)
        self.chief_of = {o.unit: o.id for o in roster.officers if o.role == "chief"}
        self.unit_of = {o.id: o.unit for o in roster.officers}
        self.ids = [o.id for o in roster.officers if o.role in ("officer", "chief")]
        self.bearer: dict[str, str] = {}

    async def mint_all(self) -> None:
        minted = await asyncio.gather(*(asyncio.to_thread(token, i) for i in self.ids))
        self.bearer = dict(zip(self.ids, minted, strict=True))

    def who(self, move: Move, officer_id: str) -> str:
        if move.role == "officer":
            return officer_id
        return self.chief_of[self.unit_of[officer_id]]


@dataclass
class Watch:
    """Every event on the exchange, and the moments those we wait for arrived."""

    arrived: dict[tuple[str, str], asyncio.Future[tuple[float, dict[str, Any]]]] = field(
        default_factory=dict
    )
    count: int = 0
    bodies: list[bytes] = field(default_factory=list)  # a sample, to replay to the bare broker
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def future(self, kind: str, code: str) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        key = (kind, code)
        if key not in self.arrived:
            self.arrived[key] = asyncio.get_running_loop().create_future()
        return self.arrived[key]

    def forget(self, code: str) -> None:
        for kind in ("assigned", "notified", "delivered"):
            self.arrived.pop((kind, code), None)

    def on_message(self, message: AbstractIncomingMessage) -> None:
        at = time.perf_counter()
        self.count += 1
        if len(self.bodies) < 2000:
            self.bodies.append(message.body)
        event = json.loads(message.body)
        kind = str(event.get("type", ""))
        self.by_type[kind] += 1
        data = event.get("data") or {}
        code = str(data.get("dossier_code") or event.get("subject") or "")
        if kind == "dossier.assigned":
            self._arrive("assigned", code, at, data)
        elif kind == "notification.sent":
            trigger = str(data.get("trigger_event_type", ""))
            if trigger in ("dossier.approved", "dossier.rejected"):
                self._arrive("notified", code, at, data)
            elif trigger == "dossier.result_delivered":
                self._arrive("delivered", code, at, data)

    def _arrive(self, kind: str, code: str, at: float, data: dict[str, Any]) -> None:
        future = self.future(kind, code)
        if not future.done():
            future.set_result((at, data))


async def watch_exchange(amqp_url: str, watch: Watch) -> aio_pika.abc.AbstractConnection:
    """Bind our own queue to the events exchange, as the tests do; returns the connection."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1000)
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")

    async def take(message: AbstractIncomingMessage) -> None:
        watch.on_message(message)

    await queue.consume(take, no_ack=True)
    return connection


@dataclass
class Journey:
    """One dossier's legs (seconds), or why it failed."""

    procedure: str
    legs: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    code: str = ""
    task_id: str = ""
    officer_id: str = ""
    actions: int = 0
    error: str = ""
    began: float = 0.0  # perf_counter when it started


Hook = Callable[[str], Awaitable[None]]


async def _noop(step: str) -> None:
    return None


class Lanes:
    """Several HTTP clients to one service, the least busy taking each request. One httpx pool does
    work per request in proportion to its connections (httpcore's assignment of requests to
    connections), so at concurrency 50 a single pool of 60 spent a fifth of the benchmark
    client's core there; pools of a few connections each spend a fraction of that."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients
        self.busy = [0] * len(clients)  # requests under way on each

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        lane = min(range(len(self.clients)), key=self.busy.__getitem__)  # the least busy
        self.busy[lane] += 1
        try:
            return await self.clients[lane].request(method, url, **kwargs)
        finally:
            self.busy[lane] -= 1

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._send("POST", url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._send("GET", url, **kwargs)


Client = httpx.AsyncClient | Lanes


@dataclass
class Driver:
    """Takes dossiers through their journeys against running services."""

    intake: Client
    review: Client
    watch: Watch
    tokens: Tokens
    step_timeout: float = 120.0

    async def _upload(self, document_type: str, media_type: str) -> str:
        response = await self.intake.post(
            "/v1/attachments",
            params={"document_type": document_type},
            content=SAMPLES[media_type],
            headers={"Content-Type": media_type},
        )
        if response.status_code != 201:
            raise RuntimeError(f"upload {response.status_code}: {response.text[:300]}")
        return str(response.json()["id"])

    async def _wait(self, kind: str, code: str) -> tuple[float, dict[str, Any]]:
        try:
            return await asyncio.wait_for(
                asyncio.shield(self.watch.future(kind, code)), self.step_timeout
            )
        except TimeoutError:
            raise RuntimeError(f"{kind} of {code} not seen in {self.step_timeout:.0f}s") from None

    async def act(self, journey: Journey, move: Move) -> float:
        """Take `move` on the journey's task; returns when the answer came."""
        who = self.tokens.who(move, journey.officer_id)
        started = time.perf_counter()
        response = await self.review.post(
            f"/v1/tasks/{journey.task_id}/actions",
            json={"action": move.action, "reason": None},
            headers={"Authorization": f"Bearer {self.tokens.bearer[who]}"},
        )
        done = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"{move.action} {response.status_code}: {response.text[:300]}")
        journey.legs[leg_of(move.action)].append(done - started)
        journey.actions += 1
        return done

    async def run(self, plan: Plan, hook: Hook = _noop) -> Journey:
        """The whole path of one dossier; `hook(step)` is awaited after each step (the
        round-trip probe diffs the database counters there)."""
        journey = Journey(plan.procedure)
        try:
            await self._run(plan, journey, hook)
        except (RuntimeError, httpx.HTTPError) as exc:
            journey.error = f"{type(exc).__name__}: {exc}"
        return journey

    async def _run(self, plan: Plan, journey: Journey, hook: Hook) -> None:
        legs = journey.legs
        procedure = CATALOGUE.procedures[plan.procedure]
        began = journey.began = time.perf_counter()
        refs = []
        for document in procedure.documents:
            if not document.required:
                continue
            started = time.perf_counter()
            refs.append(
                {
                    "document_type": document.type,
                    "id": await self._upload(document.type, document.media_types[0]),
                }
            )
            legs[LEG_UPLOAD].append(time.perf_counter() - started)
            await hook(LEG_UPLOAD)
        started = time.perf_counter()
        response = await self.intake.post("/v1/dossiers", json={**plan.body, "attachments": refs})
        submitted = time.perf_counter()
        if response.status_code != 201:
            raise RuntimeError(f"submit {response.status_code}: {response.text[:300]}")
        journey.code = str(response.json()["code"])
        legs[LEG_SUBMIT].append(submitted - started)
        await hook(LEG_SUBMIT)
        at, assigned = await self._wait("assigned", journey.code)
        legs[LEG_ASSIGNED].append(max(0.0, at - submitted))
        journey.task_id, journey.officer_id = str(assigned["task_id"]), str(assigned["officer_id"])
        await hook(LEG_ASSIGNED)
        decided = 0.0
        for move in plan.moves:
            decided = await self.act(journey, move)
            await hook(leg_of(move.action))
        at, _ = await self._wait("notified", journey.code)
        legs[LEG_NOTIFIED].append(max(0.0, at - decided))
        legs[LEG_TOTAL].append(at - began)
        await hook(LEG_NOTIFIED)

    async def finish(self, plan: Plan, journey: Journey) -> None:
        """Close a decided dossier (hand the result over) so it becomes finished history;
        waits for the citizen's notification of it. Not timed."""
        if plan.finish is None or journey.error or not journey.task_id:
            return
        try:
            await self.act(journey, plan.finish)
            await self._wait("delivered", journey.code)
        except (RuntimeError, httpx.HTTPError) as exc:
            journey.error = f"finishing: {exc}"


async def run_many(
    driver: Driver, plan_list: list[Plan], count: int, concurrency: int
) -> tuple[float, list[Journey]]:
    """`count` journeys, procedures in turn, at most `concurrency` at once; (seconds, results)."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Journey:
        async with semaphore:
            return await driver.run(plan_list[i % len(plan_list)])

    started = time.perf_counter()
    journeys = await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started, list(journeys)


async def finish_all(
    driver: Driver, plan_list: list[Plan], journeys: list[Journey], concurrency: int
) -> None:
    by_code = {p.procedure: p for p in plan_list}
    semaphore = asyncio.Semaphore(concurrency)

    async def one(journey: Journey) -> None:
        async with semaphore:
            await driver.finish(by_code[journey.procedure], journey)

    await asyncio.gather(*(one(j) for j in journeys))
    for journey in journeys:
        driver.watch.forget(journey.code)
