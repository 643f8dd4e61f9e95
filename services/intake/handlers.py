"""Intake's use cases, one function per verb: load → decide (domain.py) → save → publish.

Each depends only on the ports of `ports.py`, gathered in `Intake`, so the API, the consumer
and the unit tests (with in-memory fakes) call them the same way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from services.intake import domain
from services.intake.catalogue import FormError, Procedure
from services.intake.content import real_type
from services.intake.documents import check, references
from services.intake.domain import (
    Busy,
    Dossier,
    EmptyFile,
    NotIntakes,
    UnknownDossier,
    UnsupportedMedia,
    code_series,
    dossier_code,
    may_see,
)
from services.intake.idempotency import (
    POLL_SECONDS,
    WAIT_SECONDS,
    Next,
    StillRunning,
    fingerprint,
    next_step,
)
from services.intake.ports import Attachments, Dossiers, FiledBefore, Keys, Procedures, Publish
from services.intake.receipts import receipt
from services.intake.submission import Submission, parse
from shared.calendar import VIETNAM, WorkingCalendar
from shared.clock import Clock, utcnow
from shared.contracts import Channel, DossierAssigned, DossierReassigned, Event
from shared.metrics import DOSSIERS_SUBMITTED

log = logging.getLogger(__name__)

MAX_CODE_TRIES = 1000  # codes taken that the counter was not seeded past (none, normally)
SAVE_TRIES = 5  # a citizen's step re-decided when review's events moved the dossier meanwhile


@dataclass(frozen=True)
class Intake:
    """The ports and settings intake's handlers run with (wired in app.py)."""

    dossiers: Dossiers
    files: Attachments
    keys: Keys
    catalogue: Procedures
    publish: Publish
    calendar: WorkingCalendar
    clock: Clock = utcnow
    agency: str = "G01.99"
    source: str = "http://127.0.0.1:8001/v1/dossiers"
    max_attachments: int = 20


@dataclass(frozen=True)
class Submit:
    """Nộp hồ sơ: the body as sent, by which channel, by whom, under which Idempotency-Key."""

    body: Any
    channel: Channel = Channel.ONLINE
    submitted_by: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Proof:
    """A dossier's code with what proves the caller is its applicant."""

    code: str
    secret: str | None = None
    phone: str | None = None


async def submit(cmd: Submit, *, intake: Intake) -> tuple[dict[str, Any], bool]:
    """The receipt, and whether it is the replay of a first answer. Everything is validated
    first (a failed request changes nothing, not even its key); then the dossier is filed once
    per Idempotency-Key."""
    submission = parse(
        cmd.body, intake.catalogue, channel=int(cmd.channel), max_attachments=intake.max_attachments
    )
    documents = await _documents(
        submission.procedure, list(submission.attachments), intake.files, require=True
    )
    key = cmd.idempotency_key
    if key is None:
        return await _file(submission, documents, cmd, intake), False
    body_hash = fingerprint(by_content(cmd.body, documents))
    if await intake.keys.claim(key, body_hash, intake.clock()):
        answer = await _file(submission, documents, cmd, intake)
        if await intake.keys.answer(key, answer, lease=0):
            return answer, False
        # Held past the lease: a retry took the key over, and its answer is the one kept.
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        record = await intake.keys.get(key)
        step = next_step(record, body_hash, intake.clock())
        assert record is not None
        if step is Next.REPLAY and record.answer is not None:
            return record.answer, True
        if step is Next.TAKE_OVER and await intake.keys.take_over(record, intake.clock()):
            # The holder died: answer from what it may have stored, else file it now.
            done = await intake.dossiers.by_idempotency_key(key)
            answer = (
                receipt(done).model_dump(mode="json")
                if done is not None
                else await _file(submission, documents, cmd, intake)
            )
            if await intake.keys.answer(key, answer, lease=record.lease + 1):
                return answer, False
            continue  # taken over again meanwhile: the answer kept is the later holder's
        if asyncio.get_running_loop().time() > deadline:
            raise StillRunning(key)
        await asyncio.sleep(POLL_SECONDS)


def by_content(body: Any, documents: list[dict[str, Any]]) -> Any:
    """The body as the Idempotency-Key compares it: each attachment named by the SHA-256 of
    what it holds, not by its id. A retry whose client uploaded the same files again (a reload
    on another portal replica, a phone that lost the first upload's answer) has new ids for the
    same bytes, and is the same submission."""
    attachments = body.get("attachments") if isinstance(body, dict) else None
    if not isinstance(attachments, list):
        return body
    held = {d["id"]: d["sha256"] for d in documents}
    named = [
        {**a, "id": f"sha256:{held[a['id']]}"} if isinstance(a, dict) and a.get("id") in held else a
        for a in attachments
    ]
    return {**body, "attachments": named}


async def _file(
    submission: Submission, documents: list[dict[str, Any]], cmd: Submit, intake: Intake
) -> dict[str, Any]:
    """Give the dossier the next code of the day, store it with `dossier.submitted`, publish."""
    now = intake.clock()
    day = now.astimezone(VIETNAM).date()
    series = code_series(intake.agency, day)
    secret = domain.new_secret()
    for _ in range(MAX_CODE_TRIES):
        number = await intake.dossiers.next_number(series, day)
        dossier, events = domain.new_dossier(
            submission,
            dossier_code(intake.agency, day, number),
            now=now,
            calendar=intake.calendar,
            source=intake.source,
            secret=secret,
            submitted_by=cmd.submitted_by,
            documents=documents,
            idempotency_key=cmd.idempotency_key,
        )
        try:
            added = await intake.dossiers.add(dossier, events, series=series, number=number)
        except FiledBefore as filed:  # a late holder of the key filed it first: its receipt
            return receipt(filed.first).model_dump(mode="json")
        if added:
            channel = dossier.channel.name.lower()
            DOSSIERS_SUBMITTED.labels(dossier.procedure_code, channel).inc()
            await _publish(intake.publish, events, dossier.code)
            return receipt(dossier, secret).model_dump(mode="json")
    raise RuntimeError(f"no free dossier code in series {series}")


async def look_up(proof: Proof, *, dossiers: Dossiers) -> Dossier:
    """Tra cứu: the dossier, for its applicant only (one read by key)."""
    return await _owned(proof, dossiers, with_outbox=False)


async def withdraw(proof: Proof, reason: str | None, *, intake: Intake) -> Dossier:
    """Rút hồ sơ: allowed until a decision; publishes `dossier.withdrawn` once."""
    for _ in range(SAVE_TRIES):
        dossier = await _owned(proof, intake.dossiers)
        changed, events = domain.withdraw(dossier, reason, now=intake.clock(), source=intake.source)
        if await intake.dossiers.save(changed, events):
            await _publish(intake.publish, events, dossier.code)
            return changed
    raise Busy(proof.code)


async def supplement(
    proof: Proof, attachments: list[dict[str, Any]], note: str | None, *, intake: Intake
) -> Dossier:
    """Bổ sung hồ sơ: only while a supplement is requested; publishes `dossier.supplemented`."""
    dossier = await _owned(proof, intake.dossiers)
    procedure = intake.catalogue.get(dossier.procedure_code)
    refs, errors = references(attachments, intake.max_attachments)
    if errors or procedure is None:
        raise FormError(errors)
    documents = await _documents(procedure, refs, intake.files, require=False)
    for _ in range(SAVE_TRIES):
        changed, events = domain.supplement(
            dossier, documents, note, now=intake.clock(), source=intake.source
        )
        if await intake.dossiers.save(changed, events):
            await _publish(intake.publish, events, dossier.code)
            return changed
        dossier = await _owned(proof, intake.dossiers)
    raise Busy(proof.code)


async def record_review_event(event: Event, *, dossiers: Dossiers) -> None:
    """Keep the citizen-facing status in step with review's events: one keyed write per
    event, idempotent on its id, whatever order they arrive in. The assignment's write also
    records the unit that receives the dossier (whose officers may read its documents)."""
    step = domain.review_step(event)
    unit = event.data.unit_id if isinstance(event, DossierAssigned) else None
    if await dossiers.add_step(event.subject, step, unit_id=unit) is None:
        raise UnknownDossier(event.subject)


async def record_holder(event: Event, *, dossiers: Dossiers) -> None:
    """A claim, release or reassignment: the unit that holds the dossier's task now (one
    guarded keyed write; an older change arriving late changes nothing)."""
    if not isinstance(event, DossierReassigned):
        raise NotIntakes(f"{event.type} names no holder")
    if await dossiers.set_unit(event.subject, event.data.unit_id, event.time) is None:
        raise UnknownDossier(event.subject)


async def upload(
    data: bytes, *, media_type: str, document_type: str, files: Attachments, catalogue: Procedures
) -> dict[str, Any]:
    """Keep one file a procedure may take, once its content shows the type it claims (else
    content.ContentRefused, nothing stored); what the citizen refers to it by."""
    if media_type not in {m for p in catalogue for d in p.documents for m in d.media_types}:
        raise UnsupportedMedia(media_type)
    if not data:
        raise EmptyFile()
    await asyncio.to_thread(real_type, data, media_type)  # decoding a photo takes ~0.5 s
    return await files.put(data, media_type=media_type, document_type=document_type)


async def _owned(proof: Proof, dossiers: Dossiers, *, with_outbox: bool = True) -> Dossier:
    dossier = await dossiers.get(proof.code, with_outbox=with_outbox)
    if dossier is None or not may_see(dossier.access, secret=proof.secret, phone=proof.phone):
        raise UnknownDossier(proof.code)
    return dossier


async def _documents(
    procedure: Procedure, refs: list[dict[str, str]], files: Attachments, *, require: bool
) -> list[dict[str, Any]]:
    """The referenced files as the dossier records them (one read), or FormError naming each
    bad reference."""
    found = await files.describe([r["id"] for r in refs]) if refs else {}
    recorded, errors = check(procedure, refs, found, require=require)
    if errors:
        raise FormError(errors)
    return recorded


async def _publish(publish: Publish, events: list[Event], code: str) -> None:
    try:
        await publish(events)
    except Exception:
        # Stored is what matters to the citizen: the outbox relay publishes it shortly.
        log.warning("%s not published yet", events[0].type, extra={"dossier": code}, exc_info=True)
