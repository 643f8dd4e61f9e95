"""The end-to-end benchmark's pure parts: how history clones are made from templates, and the
officers' path to a decision read from the workflow definitions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson import ObjectId

from benchmarks.history import Cloner, Snapshot, Template, _edits, _unique_edits
from benchmarks.journeys import Move, finishing_move, path_to_decision
from services.review.workflow import load_all

CODE = "G01.99-261201-0007"
RECORD = "0b8f5a8e-3c1d-4e7a-9d3b-2f6c1a0e9b44"
FILE = ObjectId()
SHARED = ObjectId()  # a seeded unit, say: referenced, never cloned
AT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC).replace(tzinfo=None)


def _template(
    where: tuple[str, str], doc: dict[str, Any], unique: list[list[str]] | None = None
) -> Template:
    code_re = re.compile(re.escape(CODE))
    edits = _edits(doc, code_re, {SHARED})
    edits += _unique_edits(doc, edits, unique or [])
    return Template(where, bson.encode(doc), edits)


def _cloner(*templates: Template) -> Cloner:
    snapshot = Snapshot([CODE], list(templates), None, None, {SHARED})  # type: ignore[arg-type]
    return Cloner(snapshot)


def test_one_round_rewrites_codes_ids_and_dates_consistently_across_documents() -> None:
    dossier = {"_id": CODE, "attachments": [FILE], "unit": SHARED, "at": AT, "daily_number": 7}
    record = {"_id": RECORD, "subject": f"dossier/{CODE}", "at": AT, "seq": 1}
    link = {"_id": f"{CODE}#1", "record_id": RECORD, "prev": "0" * 64}
    cloner = _cloner(
        _template(("intake", "dossiers"), dossier),
        _template(("audit", "records"), record),
        _template(("audit", "chain"), link),
    )
    r = cloner.new_round()
    a, b, c = (cloner.clone(t, r) for t in cloner.snapshot.templates)
    assert a["_id"] != CODE and re.fullmatch(r"G01\.99-\d{6}-\d{4}", a["_id"])
    assert b["subject"] == f"dossier/{a['_id']}"  # the same new code everywhere
    assert c["_id"] == f"{a['_id']}#1" and c["record_id"] == b["_id"] != RECORD
    assert a["attachments"][0] != FILE and a["unit"] == SHARED
    assert a["at"] == b["at"] == AT - timedelta(days=r.days)
    assert 1 <= r.days <= 3 * 365
    assert a["_id"].split("-")[1] == f"{AT - timedelta(days=r.days):%y%m%d}"  # dated that day
    other = cloner.new_round()
    assert cloner.clone(cloner.snapshot.templates[1], other)["_id"] not in (RECORD, b["_id"])


def test_a_unique_index_the_rewrite_leaves_unchanged_gets_values_of_its_own() -> None:
    counter = {"_id": FILE, "day": "261201", "number": 7}  # unique (day, number)
    chunk = {"_id": ObjectId(), "files_id": FILE, "n": 0}  # unique (files_id, n): files_id moves
    cloner = _cloner(
        _template(("intake", "numbers"), counter, [["day", "number"]]),
        _template(("intake", "attachments.chunks"), chunk, [["files_id", "n"]]),
    )
    numbers, chunks = set(), set()
    for _ in range(5):
        r = cloner.new_round()
        numbered, piece = (cloner.clone(t, r) for t in cloner.snapshot.templates)
        numbers.add((numbered["day"], numbered["number"]))
        chunks.add((piece["files_id"], piece["n"]))
        assert piece["n"] == 0  # the chunk keeps its place in its file
        assert numbered["number"] < 0  # below anything a live counter hands out
    assert len(numbers) == 5 and len(chunks) == 5


def test_the_officers_path_to_approval_comes_from_the_workflow() -> None:
    registry = load_all()
    one, two = registry.for_new("1.004194"), registry.for_new("1.004222")
    assert path_to_decision(one) == [Move("receive", "officer"), Move("approve", "officer")]
    assert path_to_decision(two) == [
        Move("receive", "officer"),
        Move("propose", "officer"),
        Move("approve", "chief"),
    ]
    assert finishing_move(one) == finishing_move(two) == Move("deliver", "officer")
