"""Audit's pure rules: masking, hashes and chains, Merkle proofs, statistics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pydantic import SecretStr
from pymongo.errors import BulkWriteError

from services.audit import ledger
from services.audit.batching import Batcher, PartialWrite
from services.audit.domain import actor_of, build_record, with_states_before
from services.audit.privacy import keyed_hash, scrub_text, without_keyed_hashes
from services.audit.settings import DEV_HMAC_KEY, AuditSettings
from services.audit.statistics import facts, summarise
from services.audit.store import AuditStore, insert_errors_are_duplicates
from shared.calendar import VIETNAM, WorkingCalendar
from tests.factories import VALID_FORM, submitted_event

KEY = b"test-key"
MARKER_KEY = ledger.marker_key(KEY)


def test_a_submission_is_recorded_with_identifiers_masked_and_keyed() -> None:
    event = submitted_event()
    personal_id = VALID_FORM["applicant"]["personal_id"]
    record = build_record(event, hmac_key=KEY, recorded_at=datetime.now(UTC))
    dumped = json.dumps(ledger.jsonable(record), ensure_ascii=False)
    assert personal_id not in dumped and "0912345678" not in dumped and "912345678" not in dumped
    applicant = record["data"]["applicant"]
    assert applicant["personal_id"] == "********" + personal_id[-4:]
    assert applicant["phone"] == "********5678"
    assert applicant["personal_id_hmac"] == keyed_hash(personal_id, KEY)
    assert (
        record["applicant_id_hmac"] == keyed_hash(personal_id, KEY) != keyed_hash(personal_id, b"x")
    )
    assert (record["actor"], record["to_state"], record["status_code"]) == (
        "citizen",
        "submitted",
        1,
    )
    assert record["procedure_code"] == "1.004194"


def test_free_text_loses_ids_and_phone_numbers_but_not_digests_or_uuids() -> None:
    text = "CCCD 001234567890, gọi 0912345678 hoặc +84912345678"
    assert scrub_text(text) == "CCCD ********7890, gọi ******5678 hoặc ********5678"
    digest = hashlib.sha256(b"x").hexdigest()
    untouched = f"sha {digest}, id 1c0e7f2a-1b2c-4d5e-8f90-123456789012, 150.000.000 đồng"
    assert scrub_text(untouched) == untouched


PERSONAL_ID, OLD_ID, PHONE = "001099012345", "121234567", "912345678"


def leaked(text: str) -> set[str]:
    """Which of the test's identifiers `text` still holds, however they were written: spaces,
    dots, dashes and underscores between digits are squeezed out before looking."""
    squeezed = re.sub(r"(?<=\d)[\s.\-_]+(?=\d)", "", text)
    return {n for n in (PERSONAL_ID, OLD_ID, PHONE) if n in squeezed}


def test_no_identifier_survives_in_any_form_it_may_be_written() -> None:
    event = submitted_event()
    notes = [
        f"số{PERSONAL_ID}",
        f"CCCD_{PERSONAL_ID}",
        "001 099 012 345",
        "001.099.012.345",
        f"gọi 84{PHONE}",
        f"gọi +84 {PHONE[:3]} {PHONE[3:6]} {PHONE[6:]}",
        f"gọi 0{PHONE[:3]}.{PHONE[3:6]}.{PHONE[6:]}",
        f"số 2 0{PHONE}",
        f"CCCD {PERSONAL_ID} và 0{PHONE}",
    ]
    form = {"old_id": OLD_ID, "purpose": " / ".join(notes), "notes": notes}
    data = event.data.model_copy(update={"procedure_code": "2.001178", "form": form})
    record = build_record(
        event.model_copy(update={"data": data}), hmac_key=KEY, recorded_at=datetime.now(UTC)
    )
    assert leaked(json.dumps(ledger.jsonable(record), ensure_ascii=False)) == set()
    assert record["data"]["form"]["old_id"] == "*****4567"
    assert record["data"]["form"]["old_id_hmac"] == keyed_hash(OLD_ID, KEY)
    # (The check itself finds them in the clear.)
    assert leaked(" / ".join(notes)) == {PERSONAL_ID, PHONE}


def test_states_before_are_filled_from_the_step_before() -> None:
    t = datetime(2026, 11, 2, tzinfo=UTC)
    records = [
        {"_id": "b", "time": t, "from_state": None, "to_state": "assigned"},
        {"_id": "a", "time": t, "from_state": None, "to_state": "submitted"},
        {"_id": "c", "time": t.replace(hour=1), "from_state": "receiving", "to_state": "checking"},
    ]
    shown = with_states_before(records)
    assert [(r["_id"], r["from_state"]) for r in shown] == [
        ("a", None),
        ("b", "submitted"),
        ("c", "receiving"),
    ]


# --- chains ---------------------------------------------------------------------------------


def _chain(n: int) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    t = datetime(2026, 11, 2, 1, 2, 3, 456000, tzinfo=UTC)
    records = {
        f"e{i}": {"_id": f"e{i}", "dossier_code": "D", "time": t, "data": {"n": i, "x": 1.5}}
        for i in range(n)
    }
    links, prev = [], ledger.GENESIS
    for i, rid in enumerate(records):
        link = ledger.make_link(
            dossier_code="D", seq=i, record=records[rid], prev_hash=prev, settled_at=t
        )
        links.append(link)
        prev = link["hash"]
    return records, links


def test_an_untouched_chain_holds() -> None:
    records, links = _chain(4)
    assert ledger.check_chain("D", records, links, {}, MARKER_KEY) is None


def test_each_kind_of_tampering_is_named() -> None:
    records, links = _chain(4)
    records["e2"]["data"] = {"n": 99, "x": 1.5}
    found = ledger.check_chain("D", records, links, {}, MARKER_KEY)
    assert found is not None and (found.kind, found.record_id, found.seq) == ("modified", "e2", 2)

    records, links = _chain(4)
    del records["e1"]
    found = ledger.check_chain("D", records, links, {}, MARKER_KEY)
    assert found is not None and (found.kind, found.record_id) == ("deleted", "e1")

    records, links = _chain(4)
    del records["e1"]
    found = ledger.check_chain("D", records, links[:1] + links[2:], {}, MARKER_KEY)
    assert found is not None and (found.kind, found.seq) == ("deleted", 1)

    records, links = _chain(4)
    records["forged"] = {"_id": "forged", "dossier_code": "D"}
    found = ledger.check_chain("D", records, links, {}, MARKER_KEY)
    assert found is not None and (found.kind, found.record_id) == ("inserted", "forged")
    # Awaiting its link: audit's own marker (its MAC holds) excuses it...
    marker = {"_id": "forged", "mac": ledger.marker_mac(MARKER_KEY, records["forged"])}
    assert ledger.check_chain("D", records, links, {"forged": marker}, MARKER_KEY) is None
    # ...a forged marker (no MAC, or one under another key) does not,
    for forged in (
        {"_id": "forged"},
        {**marker, "mac": ledger.marker_mac(b"x", records["forged"])},
    ):
        found = ledger.check_chain("D", records, links, {"forged": forged}, MARKER_KEY)
        assert found is not None and found.kind in ("inserted", "modified")
        assert found.record_id == "forged"
    # ...and a record edited while it waits is named.
    records["forged"]["actor"] = "o9"
    found = ledger.check_chain("D", records, links, {"forged": marker}, MARKER_KEY)
    assert found is not None and (found.kind, found.record_id) == ("modified", "forged")

    records, links = _chain(4)
    links[3]["prev_hash"] = links[1]["hash"]
    found = ledger.check_chain("D", records, links, {}, MARKER_KEY)
    assert found is not None and found.kind == "modified" and found.seq == 3


def test_a_record_chained_twice_is_named_duplicated() -> None:
    """Two settlers that both chained a record (a valid chain otherwise: each link follows
    the one before) leave it at two places; verification names the second."""
    records, links = _chain(3)
    again = ledger.make_link(
        dossier_code="D",
        seq=3,
        record=records["e1"],
        prev_hash=links[-1]["hash"],
        settled_at=links[-1]["settled_at"],
    )
    found = ledger.check_chain("D", records, [*links, again], {}, MARKER_KEY)
    assert found is not None
    assert (found.kind, found.record_id, found.seq) == ("duplicated", "e1", 3)


def test_hashes_are_over_rfc8785_canonical_json() -> None:
    value = {"b": 1, "a": [1.5, "é"], "t": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)}
    assert (
        ledger.canonical(value) == '{"a":[1.5,"é"],"b":1,"t":"2026-01-02T03:04:05.678Z"}'.encode()
    )
    assert ledger.digest(value) == hashlib.sha256(ledger.canonical(value)).hexdigest()


# --- Merkle proofs, checked by an independent RFC 9162 §2.1.3.2 verifier ----------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _sha(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_every_leaf_has_a_proof_against_the_root(size: int) -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(size)]
    root = bytes.fromhex(ledger.merkle_root(hashes))
    for i, h in enumerate(hashes):
        leaf = _sha(b"\x00" + bytes.fromhex(h))
        path = [bytes.fromhex(p) for p in ledger.inclusion_path(i, hashes)]
        assert verify_inclusion(i, size, leaf, path, root)
        other = _sha(b"\x00" + bytes.fromhex(hashes[(i + 1) % size]))
        assert size == 1 or not verify_inclusion(i, size, other, path, root)


# --- statistics, against a hand-computed example ---------------------------------------------


def _at(day: int, hour: int, minute: int = 0, month: int = 11) -> str:
    """An instant of 2026 (in November unless said) in Vietnam time, as events carry it."""
    return datetime(2026, month, day, hour, minute, tzinfo=VIETNAM).astimezone(UTC).isoformat()


def _rec(rid: str, kind: str, at: str, unit: str | None = "U", **data: Any) -> dict[str, Any]:
    return {
        "_id": rid,
        "type": kind,
        "time": datetime.fromisoformat(at),
        "procedure_code": "P",
        "unit_id": unit,
        "data": data,
    }


def test_statistics_match_a_hand_computed_example() -> None:
    # November 2026: Monday the 2nd to Friday the 6th are working days (07:00–11:30, 13:30–17).
    on_time_after_pause = [
        # Received Mon 07:00, 3 working days: promised Wed 17:00.
        _rec(
            "a1",
            "dossier.submitted",
            _at(2, 7),
            "00004",
            received_at=_at(2, 7),
            promised_at=_at(4, 17),
        ),
        # Paused Mon 13:30 → Wed 07:00: 3.5 h + 8 h = 11.5 working hours, so due Fri 10:30.
        _rec("a2", "dossier.supplement_requested", _at(2, 13, 30), requested_at=_at(2, 13, 30)),
        _rec("a3", "dossier.supplemented", _at(4, 7), None, supplemented_at=_at(4, 7)),
        # Decided Fri 09:00: on time. 34 h from receipt less 11.5 h paused = 22.5 h = 2.8125 days.
        _rec("a4", "dossier.approved", _at(6, 9), decided_at=_at(6, 9)),
    ]
    late = [
        # Received Mon 07:00, promised Tue 17:00; apology Tue 16:00 with a new date Thu 17:00.
        _rec(
            "b1",
            "dossier.submitted",
            _at(2, 7),
            "00004",
            received_at=_at(2, 7),
            promised_at=_at(3, 17),
        ),
        _rec("b2", "dossier.apology_issued", _at(3, 16), promised_at=_at(5, 17)),
        # Decided Wed 11:30, before the new date but late: 8 + 8 + 4.5 = 20.5 h = 2.5625 days.
        _rec("b3", "dossier.rejected", _at(4, 11, 30), decided_at=_at(4, 11, 30)),
    ]
    undecided = [
        _rec("c1", "dossier.submitted", _at(3, 9), "00004", received_at=_at(3, 9)),
        _rec("c2", "dossier.assigned", _at(3, 9, 1)),
    ]
    other_unit = [
        # Received Mon 07:00, decided Mon 15:00: 4.5 + 1.5 = 6 h = 0.75 days, on time.
        _rec(
            "d1",
            "dossier.submitted",
            _at(2, 7),
            "00007",
            received_at=_at(2, 7),
            promised_at=_at(2, 17),
        ),
        _rec("d2", "dossier.approved", _at(2, 15), "U2", decided_at=_at(2, 15)),
    ]
    received_before = [
        # Received Fri 30 Oct 07:00 (before the period), promised Mon 17:00, decided Mon 08:00:
        # on time, 8 h + 1 h = 1.125 days; decided in the period, not received in it.
        _rec(
            "e1",
            "dossier.submitted",
            _at(30, 7, month=10),
            "00004",
            received_at=_at(30, 7, month=10),
            promised_at=_at(2, 17),
        ),
        _rec("e2", "dossier.approved", _at(2, 8), decided_at=_at(2, 8)),
    ]
    rows = summarise(
        {
            "A": on_time_after_pause,
            "B": late,
            "C": undecided,
            "D": other_unit,
            "E": received_before,
        },
        since=datetime.fromisoformat(_at(2, 7)),
        until=datetime.fromisoformat(_at(7, 0)),
        calendar=WorkingCalendar(),
    )
    # U: received A, B, C; decided A, B, E; on time A, E; late B; median of 2.8125, 2.5625
    # and 1.125 days.
    assert rows == [
        {
            "procedure_code": "P",
            "unit_id": "U",
            "received": 3,
            "decided": 3,
            "on_time": 2,
            "late": 1,
            "on_time_rate": 2 / 3,
            "median_working_days": 2.5625,
        },
        {
            "procedure_code": "P",
            "unit_id": "U2",
            "received": 1,
            "decided": 1,
            "on_time": 1,
            "late": 0,
            "on_time_rate": 1.0,
            "median_working_days": 0.75,
        },
    ]


def test_a_decision_that_ends_a_pause_is_due_later_by_that_pause() -> None:
    records = [
        # Received Mon 07:00, promised Tue 17:00.
        _rec(
            "f1",
            "dossier.submitted",
            _at(2, 7),
            "00004",
            received_at=_at(2, 7),
            promised_at=_at(3, 17),
        ),
        # Paused Tue 07:00 and decided during the pause, Wed 09:00, the decision stating the
        # date in force (Tue 17:00): 8 + 2 working hours paused, due Thu 09:00: on time.
        _rec("f2", "dossier.supplement_requested", _at(3, 7), requested_at=_at(3, 7)),
        _rec("f3", "dossier.rejected", _at(4, 9), decided_at=_at(4, 9), promised_at=_at(3, 17)),
    ]
    assert facts(records, WorkingCalendar()).on_time is True


# --- batching -------------------------------------------------------------------------------


async def test_batches_are_bounded_and_a_failed_write_reaches_every_waiting_handler() -> None:
    written: list[list[dict[str, Any]]] = []
    fail = False

    async def write(docs: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0.005)
        if fail:
            raise ConnectionError("database away")
        written.append(docs)

    batcher = Batcher(write, size=4, wait=0.01)
    await asyncio.gather(*(batcher.submit({"_id": i}) for i in range(10)))
    assert sorted(d["_id"] for batch in written for d in batch) == list(range(10))
    assert max(len(batch) for batch in written) == 4 and batcher.batches == len(written)

    fail = True
    results = await asyncio.gather(
        *(batcher.submit({"_id": i}) for i in range(6)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)  # not acked: retried
    assert sum(len(batch) for batch in written) == 10


async def test_a_document_the_database_refuses_fails_its_own_handler_only() -> None:
    async def write(docs: list[dict[str, Any]]) -> None:
        raise PartialWrite({i for i, d in enumerate(docs) if d.get("bad")}, "refused")

    batcher = Batcher(write, size=4, wait=0.01)
    docs = [{"_id": 0}, {"_id": 1, "bad": True}, {"_id": 2}, {"_id": 3}]
    results = await asyncio.gather(*(batcher.submit(d) for d in docs), return_exceptions=True)
    assert [isinstance(r, PartialWrite) for r in results] == [False, True, False, False]


class RefusingCollection:
    """A collection that refuses the documents whose `_id` is in `refused` (a unit test's
    stand-in for a database that refuses some documents of a bulk insert)."""

    def __init__(self, refused: set[int]) -> None:
        self.refused, self.stored = refused, list[dict[str, Any]]()

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> None:
        assert ordered is False
        errors = [{"index": i, "code": 2} for i, d in enumerate(docs) if d["_id"] in self.refused]
        self.stored += [d for d in docs if d["_id"] not in self.refused]
        if errors:
            raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": []})


async def test_a_record_is_written_only_once_its_marker_is_and_failures_are_by_index() -> None:
    records = [
        build_record(submitted_event(), hmac_key=KEY, recorded_at=datetime.now(UTC)) | {"_id": i}
        for i in range(4)
    ]
    pending, stored = RefusingCollection({1}), RefusingCollection({2})
    others = ["chain", "heads", "seals", "leases", "dossier_facts", "dossier_fact_records"]
    others += ["upgrades", "fact_changes"]
    db = {"pending": pending, "records": stored} | dict.fromkeys(others)
    store = AuditStore(cast(Any, db))
    with pytest.raises(PartialWrite) as failure:
        await store.insert_records(records, hmac_key=KEY)
    assert failure.value.failed == {1, 2}
    assert [d["_id"] for d in stored.stored] == [0, 3]


def test_exported_csv_cells_never_start_a_formula() -> None:
    from services.audit.api import _cell

    assert [_cell(v) for v in ("=HYPERLINK(1)", "@x", "o1", None, 9)] == [
        "'=HYPERLINK(1)",
        "'@x",
        "o1",
        "",
        9,
    ]


def test_only_duplicate_key_errors_count_as_a_redelivery() -> None:
    def failure(write: list[int], concern: bool) -> BulkWriteError:
        return BulkWriteError(
            {
                "writeErrors": [{"index": i, "code": code} for i, code in enumerate(write)],
                "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication"}]
                if concern
                else [],
                "nInserted": 0,
            }
        )

    assert insert_errors_are_duplicates(failure([11000, 11000], concern=False))
    assert not insert_errors_are_duplicates(failure([], concern=True))
    assert not insert_errors_are_duplicates(failure([11000], concern=True))
    assert not insert_errors_are_duplicates(failure([11000, 121], concern=False))
    assert not insert_errors_are_duplicates(failure([], concern=False))


def test_the_development_hmac_key_is_named_and_keyed_hashes_are_not_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.audit.settings"):
        assert AuditSettings(hmac_key=SecretStr(DEV_HMAC_KEY)).hmac_key_bytes()
    assert "development default" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="services.audit.settings"):
        assert AuditSettings(hmac_key=SecretStr("ours")).hmac_key_bytes() == b"ours"
    assert caplog.text == ""

    record = build_record(submitted_event(), hmac_key=KEY, recorded_at=datetime.now(UTC))
    shown = json.dumps(ledger.jsonable(without_keyed_hashes(record)))
    assert "_hmac" not in shown and "********" in shown
    assert record["applicant_id_hmac"] and record["data"]["applicant"]["personal_id_hmac"]


def test_a_reassignment_and_an_apology_name_the_officer_who_made_them() -> None:
    assert actor_of("dossier.reassigned", {"officer_id": "o2", "by": "sup1"}) == "sup1"
    assert actor_of("dossier.apology_issued", {"officer_id": "o3"}) == "o3"
    assert actor_of("dossier.assigned", {"officer_id": "o2"}) == "system"
