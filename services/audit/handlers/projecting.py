"""The statistics projection: one `dossier_facts` document per dossier, `statistics.facts` of
its records, kept as they are settled (`fold_facts`, called by settling before it drops their
pending markers) and built once over an old database's records (`build_facts`).

A fold is load → decide → save by key: the dossiers' summaries documents (one query by `_id`),
then per dossier the summaries with the new records folded in (`statistics.folded`: a set by
record id, so any order and any redelivery give the same document) and `facts` over them; the
summaries saved guarded by the version read (first documents in one unordered insert, the
others by a conditional replace), then the facts of those saved, each only over an older
version (one round trip for all). A writer that loses the race (another settler, the build)
re-reads and folds again; one that loses every try leaves its markers pending, and the next
round folds again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime

from services.audit.domain import Record
from services.audit.ports import FactsBuild, FactsLog, Search
from services.audit.statistics import bears_on_facts, facts_document, folded
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.storage import Document

log = logging.getLogger(__name__)
FOLD_TRIES = 3
BUILD_PAGE = 200  # dossiers folded per round trip of the build
FACTS_BUILD = "dossier_facts"  # the upgrade step's name (`upgrades` collection)


async def fold_facts(
    records: dict[str, list[Record]],
    *,
    store: FactsLog,
    calendar: WorkingCalendar,
    tries: int = FOLD_TRIES,
) -> set[str]:
    """Fold each dossier's `records` into its facts; the codes whose facts could not be saved
    (another writer won every try: fold them again later). A dossier whose records `facts`
    cannot read (say, a date that is no date) is logged and left as it was."""
    todo = {code: recs for code, recs in records.items() if any(map(bears_on_facts, recs))}
    done: list[Document] = []  # the facts of the summaries saved
    for _ in range(tries):
        if not todo:
            break
        held = await store.fact_records(sorted(todo))
        first: list[tuple[Document, Document]] = []
        lost: dict[str, list[Record]] = {}
        for code, recs in todo.items():
            doc = held.get(code)
            new = _fold(code, doc, recs, calendar)
            if new is None:
                continue
            sources, facts = new
            if doc is None:
                assert sources is not None  # a first document always has summaries
                first.append((sources, facts))
            elif sources is None or await store.replace_fact_records(sources, doc["version"]):
                done.append(facts)
            else:
                lost[code] = recs
        taken = await store.insert_fact_records([sources for sources, _ in first])
        for sources, facts in first:
            if sources["_id"] in taken:
                lost[sources["_id"]] = todo[sources["_id"]]
            else:
                done.append(facts)
        todo = lost
    await store.put_facts(done)
    for code in todo:
        log.warning("the facts of dossier %s moved under us %d times; folding later", code, tries)
    return set(todo)


def _fold(
    code: str, doc: Document | None, recs: Iterable[Record], calendar: WorkingCalendar
) -> tuple[Document | None, Document] | None:
    """The dossier's next summaries document and its facts (None: no record bears on them,
    or they cannot be read). When every record is known already (a redelivery, or a crash
    after the summaries were saved and before the markers went), no summaries to save and
    the facts of those known: written again, in case that crash came before them."""
    known = list(doc["records"]) if doc else []
    summaries = folded(known, recs)
    if summaries is None and doc is None:
        return None
    version = int(doc["version"]) if doc else -1
    try:
        if summaries is None:
            return None, facts_document(code, known, calendar, version)
        sources = {"_id": code, "records": summaries, "version": version + 1}
        return sources, facts_document(code, summaries, calendar, version + 1)
    except (ValueError, TypeError, KeyError):
        log.exception("the records of dossier %s say no facts; its statistics are left", code)
        return None


class Projection:
    """Whether `dossier_facts` is built: read by key until it is, then known."""

    def __init__(self) -> None:
        self.built = False

    async def ready(self, store: Search) -> bool:
        if not self.built:
            state = await store.upgrade_state(FACTS_BUILD)
            self.built = bool(state and state.get("done"))
        return self.built


async def facts_to_build(*, store: FactsBuild, clock: Clock) -> bool:
    """Whether `dossier_facts` must be built from stored records (an old database). A new one
    (no record yet) is noted built at once: settling keeps it from the first record."""
    state = await store.upgrade_state(FACTS_BUILD)
    if state is not None and state.get("done"):
        return False
    if state is None and not await store.has_records():
        await store.note_upgrade(FACTS_BUILD, done=True, finished_at=clock())
        return False
    return True


async def build_facts(
    *,
    store: FactsBuild,
    calendar: WorkingCalendar,
    clock: Clock,
    page: int = BUILD_PAGE,
    projection: Projection | None = None,
) -> int:
    """Fold every stored dossier's records into `dossier_facts`, `page` dossiers per round
    trip, in code order, noting how far it got (a restart goes on from there; two processes
    building at once, or settling meanwhile, fold the same sets: the same documents). Then
    notes it done. How many dossiers it read."""
    if not await facts_to_build(store=store, clock=clock):
        if projection is not None:
            projection.built = True
        return 0
    state = await store.upgrade_state(FACTS_BUILD) or {}
    after: str | None = state.get("after")
    started: datetime = state.get("started_at") or clock()
    if not state:
        await store.note_upgrade(FACTS_BUILD, done=False, started_at=started)
    log.info("building the statistics projection (dossier_facts) after %s", after or "the start")
    batch: dict[str, list[Record]] = {}
    read = 0
    async for code, recs in store.grouped_records(after=after):
        batch[code] = recs
        read += 1
        if len(batch) >= page:
            await _build_page(batch, store=store, calendar=calendar)
            await store.note_upgrade(FACTS_BUILD, after=code)
            batch = {}
    await _build_page(batch, store=store, calendar=calendar)
    await store.note_upgrade(FACTS_BUILD, done=True, finished_at=clock())
    if projection is not None:
        projection.built = True
    log.info("statistics projection built: %d dossiers since %s", read, started)
    return read


async def keep_building_facts(
    *,
    store: FactsBuild,
    calendar: WorkingCalendar,
    clock: Clock,
    projection: Projection,
    retry_every: float = 30.0,
) -> None:
    """`build_facts` in the background, again (from where it got) after a failure."""
    while not projection.built:
        try:
            await build_facts(store=store, calendar=calendar, clock=clock, projection=projection)
        except Exception:
            log.exception("building the statistics projection failed; trying again")
            await asyncio.sleep(retry_every)


async def _build_page(
    batch: dict[str, list[Record]], *, store: FactsLog, calendar: WorkingCalendar
) -> None:
    left = batch
    while left:  # raced by settling: fold again until it holds
        left = {c: batch[c] for c in await fold_facts(left, store=store, calendar=calendar)}
